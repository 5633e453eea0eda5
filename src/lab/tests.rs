//! Lab names, shapes and ports, checked before Docker is asked anything.

use super::*;

fn opts(nodes: usize, managers: usize, ssh_port: Option<u16>) -> UpOptions {
    UpOptions {
        name: "lab".into(),
        nodes,
        managers,
        release: Release::Trixie,
        image: None,
        ssh_port,
    }
}

#[test]
fn lab_names_are_checked() {
    for good in ["lab", "mptest", "a-b_c.d", "9"] {
        assert!(check_name(good).is_ok(), "{good}");
    }
    for bad in ["", "Lab", "-x", "a b", "a/b", &"x".repeat(41)] {
        assert!(check_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn shapes_are_checked() {
    assert!(check_shape(&opts(3, 1, None)).is_ok());
    assert!(check_shape(&opts(3, 3, Some(40001))).is_ok());
    assert!(check_shape(&opts(0, 0, None)).is_err());
    assert!(check_shape(&opts(3, 0, None)).is_err());
    assert!(check_shape(&opts(3, 4, None)).is_err());
    assert!(check_shape(&opts(3, 1, Some(65535))).is_err());
    assert!(check_shape(&opts(1, 1, Some(65535))).is_ok());
    assert!(check_shape(&opts(200, 1, Some(65336))).is_ok());
    assert!(check_shape(&opts(200, 1, Some(65337))).is_err());
}

/// Port arithmetic near 65535 is checked: an error naming the node, never a wrap or a panic.
#[test]
fn node_ports_stop_at_65535() {
    assert_eq!(node_ssh_port(40000, 0).unwrap(), 40000);
    assert_eq!(node_ssh_port(65534, 1).unwrap(), 65535);
    let e = node_ssh_port(65535, 1).unwrap_err().to_string();
    assert!(e.contains("--ssh-port 65535") && e.contains("node2"), "{e}");
    assert!(node_ssh_port(1, 65535).is_err());
    assert!(node_ssh_port(1, usize::MAX).is_err());
}

#[test]
fn errors_say_what_to_install() {
    let e = LabError::NoImageBuilder {
        image: "minipaas-node:trixie".into(),
        release: "trixie".into(),
        registry: "no such host".into(),
    };
    assert!(e.to_string().contains("apt-get install debootstrap"));
    let e = LabError::NoDocker { reason: "x".into() };
    assert!(e.to_string().contains("apt-get install docker.io"));
    assert!(e.to_string().contains("dockerd &"));
}
