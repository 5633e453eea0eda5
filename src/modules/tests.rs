use super::Change;

#[test]
fn a_script_is_named_by_its_first_line() {
    let run = |c: &str| Change::Run(c.into()).to_string();
    assert_eq!(
        run("systemctl restart docker"),
        "run `systemctl restart docker`"
    );
    assert_eq!(run("set -e\ndir=/etc\nnft -f x\n"), "run `set -e` …");
}
