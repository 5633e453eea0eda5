//! An env in a temp dir: its questions and its edits, file by file.

use super::*;
use std::collections::BTreeSet;

/// An env with services `web` (built) and `worker` in `compose.yaml`.
fn env() -> (tempfile::TempDir, Env) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  web:\n    build:\n      context: ./web\n      args:\n        V: ${MINIPAAS_DEPLOY_VERSION}\n        \
         D: ${MINIPAAS_TEST_UNSET_VAR:-dflt}\n  worker:\n    image: busybox\n    deploy:\n      mode: replicated-job\n",
    )
    .unwrap();
    init(
        dir.path(),
        &InitOptions {
            files: vec!["compose.yaml".into()],
            ..InitOptions::default()
        },
    )
    .unwrap();
    let env = Env::load(dir.path()).unwrap();
    (dir, env)
}

fn apps_text(env: &Env) -> String {
    std::fs::read_to_string(env.dir.join(APPS_FILE)).unwrap()
}

#[test]
fn versioned_names() {
    assert_eq!(versioned_name("app_secret", b""), "app_secret.e3b0c442");
    assert_eq!(versioned_name("x", b"abc"), "x.ba7816bf");
    assert_ne!(versioned_name("x", b"a"), versioned_name("x", b"b"));
}

#[test]
fn set_object_ref_replaces_the_old_version() {
    let (_dir, mut env) = env();
    let svc = vec!["web".to_string()];
    assert!(env
        .set_object_ref(
            ObjectKind::Secret,
            "app_secret",
            "app_secret.11111111",
            &svc
        )
        .unwrap());
    assert!(!env
        .set_object_ref(
            ObjectKind::Secret,
            "app_secret",
            "app_secret.11111111",
            &svc
        )
        .unwrap());
    assert!(env
        .set_object_ref(
            ObjectKind::Secret,
            "app_secret",
            "app_secret.22222222",
            &svc
        )
        .unwrap());
    let refs = env.object_refs(ObjectKind::Secret).unwrap();
    assert_eq!(refs, BTreeSet::from(["app_secret.22222222".to_string()]));
    assert!(env.object_refs(ObjectKind::Config).unwrap().is_empty());
    let text = apps_text(&env);
    assert!(!text.contains("11111111"), "{text}");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(yaml["secrets"]["app_secret.22222222"]["external"], true);
    assert_eq!(
        yaml["services"]["web"]["secrets"][0]["target"],
        "app_secret"
    );
    // The runtime's postgres takes a secret the same way; unknown services are refused.
    assert!(env
        .set_object_ref(
            ObjectKind::Secret,
            "postgres_password",
            "postgres_password.33333333",
            &["postgres".to_string()]
        )
        .unwrap());
    let err = env
        .set_object_ref(ObjectKind::Config, "c", "c.1", &["nope".to_string()])
        .unwrap_err();
    assert!(err.to_string().contains("`nope`"), "{err}");
    assert!(env
        .set_object_ref(ObjectKind::Secret, "bad.base", "bad.base.1", &svc)
        .is_err());
    // Removing drops every version and the top-level declaration.
    assert!(env
        .remove_object_ref(ObjectKind::Secret, "app_secret")
        .unwrap());
    assert!(!env
        .remove_object_ref(ObjectKind::Secret, "app_secret")
        .unwrap());
    let text = apps_text(&env);
    assert!(!text.contains("app_secret"), "{text}");
    let reloaded = Env::load(&env.dir).unwrap();
    assert_eq!(
        reloaded.object_refs(ObjectKind::Secret).unwrap(),
        BTreeSet::from(["postgres_password.33333333".to_string()])
    );
}

#[test]
fn builds_jobs_and_stack_files() {
    let (dir, env) = env();
    let builds = env.builds().unwrap();
    assert_eq!(builds.len(), 1);
    let b = &builds[0];
    assert_eq!(b.image, "minipaas/web:1");
    assert_eq!(b.context, env.dir.join("./web"));
    assert_eq!(b.args["V"], "1");
    assert_eq!(b.args["D"], "dflt");
    assert_eq!(env.jobs().unwrap(), vec!["worker".to_string()]);
    let names: Vec<String> = env
        .stack_files()
        .iter()
        .map(|p| {
            p.strip_prefix(dir.path().canonicalize().unwrap())
                .unwrap_or(p)
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        names,
        [
            "runtime/common.yaml",
            "runtime/caddy.yaml",
            "runtime/postgres.yaml",
            "compose.yaml",
            "compose.apps.yaml"
        ]
    );
    assert!(apps_text(&env).contains("image: minipaas/web:${MINIPAAS_DEPLOY_VERSION}"));
    // With the runtime's registry, images are pulled from it on every node.
    let mut env = env;
    env.settings.runtime.registry = true;
    assert_eq!(env.builds().unwrap()[0].image, "127.0.0.1:5000/web:1");
    assert!(env.stack_files()[3].ends_with("runtime/registry.yaml"));
}

#[test]
fn init_keeps_routes_and_follows_a_renamed_stack() {
    let (dir, mut env) = env();
    env.route("/api", "web", 8000).unwrap();
    let opts = InitOptions {
        stack: Some("shop".into()),
        domain: Some("example.com".into()),
        ..InitOptions::default()
    };
    init(dir.path(), &opts).unwrap();
    let mut env = Env::load(dir.path()).unwrap();
    let text = std::fs::read_to_string(env.caddy_json_path()).unwrap();
    assert!(text.contains("\"tasks.shop_web\""), "{text}");
    assert!(!text.contains("minipaas_web"), "{text}");
    // A path-only route now goes to the domain.
    env.route("/", "web", 8000).unwrap();
    let routes = Routes::load(&env.caddy_json_path()).unwrap();
    assert_eq!(routes.routes[1].host.as_deref(), Some("example.com"));
    assert!(init(dir.path(), &opts).unwrap().is_empty());
}

#[test]
fn cron_schedules() {
    for ok in ["*/5 * * * *", "0 30 2 * * *", "@daily", "@every 1h"] {
        assert!(check_cron(ok).is_ok(), "{ok}");
    }
    for bad in ["", "* * *", "* * * * * * *", "0 0 * * 1;x", "@"] {
        assert!(check_cron(bad).is_err(), "{bad}");
    }
}

#[test]
fn set_replicas_records_the_count_once() {
    let (_dir, mut env) = env();
    assert_eq!(env.recorded_replicas("web"), None);
    assert!(env.set_replicas("web", 3).unwrap());
    assert!(!env.set_replicas("web", 3).unwrap());
    assert!(
        apps_text(&env).contains("replicas: 3"),
        "{}",
        apps_text(&env)
    );
    let again = Env::load(&env.dir).unwrap();
    assert_eq!(again.recorded_replicas("web"), Some(3));
    assert!(matches!(
        env.set_replicas("nope", 1),
        Err(DeployError::UnknownService { .. })
    ));
    assert_eq!(
        env.services().unwrap(),
        ["web", "worker", "caddy", "postgres"]
    );
}
