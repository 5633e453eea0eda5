//! Inventory loading: YAML and INI forms, vars directories, checks.

use super::*;

fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn yaml_levels_and_precedence() {
    let d = tempfile::tempdir().unwrap();
    let inv = write(
        d.path(),
        "inv.yaml",
        "all:\n  user: admin\n  key: keys/id\n  known_hosts: kh\n  vars: {a: all, b: all, c: all}\n\
         groups:\n  managers:\n    port: 2222\n    vars: {b: managers}\n    hosts:\n      m1:\n        address: 10.0.0.1\n        vars: {c: host}\n      m2: {address: 10.0.0.2, user: root}\n\
         \n  workers:\n    hosts:\n      w1:\n",
    );
    write(d.path(), "group_vars/all.yml", "d: from_group_vars\n");
    write(d.path(), "host_vars/w1.yaml", "a: w1\n");
    let inv = Inventory::load(&inv).unwrap();
    let names: Vec<_> = inv.hosts.iter().map(|h| h.name.0.as_str()).collect();
    assert_eq!(names, ["m1", "m2", "w1"]);
    let m1 = inv.host("m1").unwrap();
    assert_eq!((m1.port, m1.user.as_str()), (2222, "admin"));
    assert_eq!(m1.key.as_deref(), Some(d.path().join("keys/id").as_path()));
    assert_eq!(m1.vars["a"], "all");
    assert_eq!(m1.vars["b"], "managers");
    assert_eq!(m1.vars["c"], "host");
    assert_eq!(m1.vars["d"], "from_group_vars");
    assert_eq!(inv.host("m2").unwrap().user, "root");
    let w1 = inv.host("w1").unwrap();
    assert_eq!((w1.address.as_str(), w1.port), ("w1", 22));
    assert_eq!(w1.vars["a"], "w1");
    assert_eq!(inv.known_hosts, Some(d.path().join("kh")));
    assert_eq!(inv.groups["managers"].len(), 2);
}

#[test]
fn ini_inventory_of_the_original_role() {
    let d = tempfile::tempdir().unwrap();
    let inv = write(
        d.path(),
        "hosts",
        "[managers]\nmanager1 ansible_host=1.2.3.4 ansible_user=root ansible_port=2200\n\n\
         [workers]\nworker1 ansible_host=1.2.3.5 ansible_ssh_private_key_file=/k/id enable_firewall=false\n\
         [all:vars]\nenable_syslog=true\nmonitoring_telegram_chat_id=\"12 34\"\n[swarm:children]\nmanagers\nworkers\n",
    );
    let inv = Inventory::load(&inv).unwrap();
    let m = inv.host("manager1").unwrap();
    assert_eq!((m.address.as_str(), m.port), ("1.2.3.4", 2200));
    let w = inv.host("worker1").unwrap();
    assert_eq!(w.key.as_deref(), Some(Path::new("/k/id")));
    assert_eq!(w.vars["enable_firewall"], false);
    assert_eq!(w.vars["enable_syslog"], true);
    assert_eq!(w.vars["monitoring_telegram_chat_id"], "12 34");
    assert_eq!(inv.groups["swarm"].len(), 2);
    assert_eq!(w.groups, ["workers", "swarm"]);
}

#[test]
fn errors_name_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "bad.yaml",
        "groups:\n  managers:\n    hostz: {}\n",
    );
    let e = Inventory::load(&p).unwrap_err().to_string();
    assert!(e.contains("bad.yaml") && e.contains("line 3"), "{e}");
    let p = write(d.path(), "bad.ini", "[managers]\nm1 ansible_port=abc\n");
    let e = Inventory::load(&p).unwrap_err().to_string();
    assert!(e.contains("bad.ini` line 2"), "{e}");
}

/// Lines that once panicked the INI reader; each must be an error naming file and line.
#[test]
fn ini_lines_without_a_name_are_errors() {
    let d = tempfile::tempdir().unwrap();
    for (text, line) in [
        ("\"\"\n", 1),
        ("''\n", 1),
        ("[managers]\nm1\n\"\" ansible_port=22\n", 3),
        ("[managers]\nm1\n[all:children]\n\"\"\n", 4),
    ] {
        let p = write(d.path(), "hosts.ini", text);
        let e = Inventory::load(&p).unwrap_err().to_string();
        assert!(
            e.contains(&format!("hosts.ini` line {line}:")),
            "{text:?}: {e}"
        );
    }
}

#[test]
fn addresses_are_ip_addresses_or_host_names() {
    let good = [
        "10.0.0.1",
        "203.0.113.10",
        "::1",
        "2001:db8::1",
        "fe80::a:b:c:d",
        "localhost",
        "node1",
        "manager-1.example.com",
        "manager-1.example.com.",
        "my_host",
        "a",
        "xn--bcher-kva.example",
    ];
    for a in good {
        assert!(check_address(a).is_ok(), "{a} refused");
    }
    let long_label = format!("{}.example", "a".repeat(64));
    let bad = [
        "",
        ".",
        "10.0.0.1\n  ProxyCommand touch /tmp/x",
        "10.0.0.1 -oProxyCommand=x",
        "host;touch /tmp/x",
        "$(touch /tmp/x)",
        "`touch /tmp/x`",
        "-oProxyCommand=x",
        "host.-x",
        "a..b",
        "host\"",
        "host'",
        "host/x",
        "[::1]",
        "10.0.0.1:22",
        "ho st",
        "host\r",
        long_label.as_str(),
    ];
    for a in bad {
        assert!(check_address(a).is_err(), "{a:?} accepted");
    }
    for u in ["root", "admin", "deploy-user", "svc_1", "a.b"] {
        assert!(check_user(u).is_ok(), "{u} refused");
    }
    for u in [
        "",
        "-oProxyCommand=x",
        "a b",
        "a\nb",
        "a;b",
        "$(x)",
        "`x`",
        "a'b",
    ] {
        assert!(check_user(u).is_err(), "{u:?} accepted");
    }
}

#[test]
fn hostile_inventory_values_are_refused_naming_file_host_and_field() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        (
            "address: \"10.0.0.1\\n  ProxyCommand touch /tmp/x\"",
            "address",
        ),
        ("address: \"$(touch /tmp/x)\"", "address"),
        (
            "address: 10.0.0.1, private_address: \"10.0.0.2;reboot\"",
            "private_address",
        ),
        ("private_address: \"`reboot`\"", "private_address"),
        ("address: -oProxyCommand=x", "address"),
        ("user: \"root -oProxyCommand=x\"", "user"),
    ];
    for (host, field) in cases {
        let p = write(
            d.path(),
            "hostile.yaml",
            &format!("groups:\n  managers:\n    hosts:\n      m1: {{{host}}}\n"),
        );
        let e = Inventory::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("hostile.yaml")
                && e.contains("host `m1`")
                && e.contains(&format!("`{field}`")),
            "{host}: {e}"
        );
        assert!(!e.contains('\n'), "the error spans lines: {e}");
    }
    // A bad address at the group level is refused for each host that inherits it.
    let p = write(
        d.path(),
        "group.yaml",
        "groups:\n  workers:\n    address: \"a b\"\n    hosts: {w1: }\n",
    );
    let e = Inventory::load(&p).unwrap_err().to_string();
    assert!(e.contains("host `w1`") && e.contains("`address`"), "{e}");
    // INI inventories: the line is known.
    let p = write(
        d.path(),
        "hostile.ini",
        "[managers]\nm1 ansible_host=10.0.0.1\nm2 ansible_host='1.2.3.4;reboot'\n",
    );
    let e = Inventory::load(&p).unwrap_err().to_string();
    assert!(
        e.contains("hostile.ini` line 3") && e.contains("ansible_host"),
        "{e}"
    );
    let p = write(
        d.path(),
        "user.ini",
        "[managers]\nm1 ansible_user='$(reboot)'\n",
    );
    let e = Inventory::load(&p).unwrap_err().to_string();
    assert!(
        e.contains("user.ini` line 2") && e.contains("ansible_user"),
        "{e}"
    );
    // Host names without an address are the address, and pass as host names.
    let p = write(
        d.path(),
        "names.yaml",
        "groups:\n  m:\n    hosts: {node-1: , n_2: , [::1]: }\n",
    );
    assert!(Inventory::load(&p).is_err());
    let p = write(
        d.path(),
        "names.yaml",
        "groups:\n  m:\n    hosts: {node-1: , n_2.lan: }\n",
    );
    Inventory::load(&p).unwrap();
}

#[test]
fn select_patterns() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "i.yaml",
        "groups:\n  managers:\n    hosts: {m1: , m2: }\n  workers:\n    hosts: {w1: , w2: }\n",
    );
    let inv = Inventory::load(&p).unwrap();
    let s = |p: &str| -> Vec<String> { inv.select(p).unwrap().into_iter().map(|h| h.0).collect() };
    assert_eq!(s("all"), ["m1", "m2", "w1", "w2"]);
    assert_eq!(s("workers"), ["w1", "w2"]);
    assert_eq!(s("m*,w2"), ["m1", "m2", "w2"]);
    assert_eq!(s("all:!managers"), ["w1", "w2"]);
    assert!(s("nothing").is_empty());
}
