//! Keeps secrets out of everything the engine reports: values of variables whose names say
//! they are secret, and the content of files whose paths say so.

use base64::Engine as _;
use serde_json::{Map, Value};

const MASK: &str = "********";
/// Words that make a variable name secret, matched against the name's parts (`db_pass`,
/// `apiKey`, `private`), so `bypass` or `keyboard` are not.
const SECRET_PARTS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pass",
    "pw",
    "pwd",
    "token",
    "tokens",
    "secret",
    "secrets",
    "key",
    "keys",
    "apikey",
    "auth",
    "authorization",
    "credential",
    "credentials",
    "private",
];
/// Words that, anywhere in a name, make it secret even without a separator (`dbpassword`).
const SECRET_WORDS: &[&str] = &["password", "passwd", "secret", "token", "credential"];
/// Last parts that say the value is about a secret, not the secret (`private_address`,
/// `docker_tls_key_file`, `ssh_key_type`).
const NOT_SECRET_LAST: &[&str] = &[
    "address",
    "addr",
    "port",
    "path",
    "file",
    "dir",
    "directory",
    "type",
    "bits",
    "size",
    "length",
    "name",
    "names",
    "user",
    "username",
    "mode",
    "owner",
    "group",
    "vars",
    "url",
    "checksum",
    "sha256",
    "fingerprint",
    "version",
];

static ASSIGNMENT: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Every secret value and its escaped forms, longest first, so a value containing another
    /// is masked whole.
    values: Vec<String>,
}

/// The lowercase parts of a name: split at non-alphanumerics and at camelCase humps.
fn parts(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A variable name that says its value is secret.
pub fn is_secret_name(name: &str) -> bool {
    let parts = parts(name);
    if parts
        .last()
        .is_some_and(|l| NOT_SECRET_LAST.contains(&l.as_str()))
    {
        return false;
    }
    let n = name.to_ascii_lowercase();
    parts.iter().any(|p| SECRET_PARTS.contains(&p.as_str()))
        || SECRET_WORDS.iter().any(|w| n.contains(w))
}

impl Redactor {
    /// Collects the string values of secret-named variables, at any depth (`db.password`,
    /// `hostvars[h].swarm_worker_token`), and of those listed in `secret_vars`. Values shorter
    /// than 4 characters are left: masking them would garble every message while hiding
    /// nothing.
    pub fn from_vars(vars: &Map<String, Value>) -> Redactor {
        let listed: Vec<String> = vars
            .get("secret_vars")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut r = Redactor::default();
        for (k, v) in vars {
            if listed.contains(k) {
                r.add_all(v);
            } else {
                r.add_var(k, v);
            }
        }
        r
    }

    /// Adds what `value` holds under a secret name, as [`Redactor::from_vars`] does: for a
    /// variable registered or set while the play runs.
    pub fn add_var(&mut self, name: &str, value: &Value) {
        if is_secret_name(name) {
            self.add_all(value);
        } else {
            match value {
                Value::Object(o) => o.iter().for_each(|(k, v)| self.add_var(k, v)),
                Value::Array(a) => a.iter().for_each(|v| self.add_var(name, v)),
                _ => {}
            }
        }
    }

    fn add_all(&mut self, value: &Value) {
        match value {
            Value::String(s) => self.add(s),
            Value::Array(a) => a.iter().for_each(|x| self.add_all(x)),
            Value::Object(o) => o.values().for_each(|x| self.add_all(x)),
            _ => {}
        }
    }

    /// Masks `value` and the forms it takes in output: JSON-escaped, shell-quoted, base64.
    pub fn add(&mut self, value: &str) {
        let value = value.trim_end_matches('\n');
        if value.len() < 4 {
            return;
        }
        let json = serde_json::to_string(value).unwrap_or_default();
        let forms = [
            value.to_string(),
            json.trim_matches('"').to_string(),
            crate::template::shell_quote(value),
            base64::engine::general_purpose::STANDARD.encode(value),
        ];
        for f in forms {
            if !self.values.contains(&f) {
                self.values.push(f);
            }
        }
        self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        out
    }

    /// [`Redactor::redact`], then also the values of secret-looking assignments
    /// (`password=…`, `token: …`, `Authorization: Bearer …`): for what hosts and services
    /// print (diffs of old file content, a failing service's last log lines), which may hold
    /// secrets minipaas was never told about, such as a token that was since rotated.
    pub fn redact_output(&self, text: &str) -> String {
        let out = self.redact(text);
        ASSIGNMENT
            .get_or_init(|| {
                regex::Regex::new(
                    r#"(?i)\b((?:[a-z0-9_.-]*(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?))["']?\s*[:=]\s*["']?|authorization:\s*(?:bearer|basic)\s+)([^\s"',;]{4,})"#,
                )
                .expect("a constant pattern")
            })
            .replace_all(&out, |c: &regex::Captures| format!("{}{MASK}", &c[1]))
            .into_owned()
    }

    /// Whether `text` holds one of the secret values.
    pub fn reveals(&self, text: &str) -> bool {
        self.values.iter().any(|v| text.contains(v.as_str()))
    }
}

/// Whether template text (a template file, a task's arguments) uses a secret-named variable
/// in one of its `{{ }}` or `{% %}` blocks. A file rendered from such text is secret whatever
/// the values are now: its old content on a host may hold a value since rotated, which no
/// redactor knows.
pub fn mentions_secret(template: &str) -> bool {
    BLOCK
        .get_or_init(|| {
            regex::Regex::new(r"(?s)\{\{.*?\}\}|\{%.*?%\}").expect("a constant pattern")
        })
        .find_iter(template)
        .any(|block| {
            IDENT
                .get_or_init(|| {
                    regex::Regex::new(r"[A-Za-z_][A-Za-z0-9_]*").expect("a constant pattern")
                })
                .find_iter(block.as_str())
                .any(|id| is_secret_name(id.as_str()))
        })
}

static BLOCK: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
static IDENT: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();

/// A file whose content must not be shown in a diff.
pub fn is_secret_path(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    is_secret_name(name)
        || name.ends_with(".secrets")
        || name.ends_with(".pem") && name.contains("key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_secret_values_only() {
        let vars = json!({"postgres_password": "hunter22", "monitoring_telegram_token": "123:abc",
            "api": "plain-value", "secret_vars": ["api"], "enable": "true"});
        let r = Redactor::from_vars(vars.as_object().unwrap());
        assert_eq!(
            r.redact("pw hunter22 tok 123:abc api plain-value enable true"),
            "pw ******** tok ******** api ******** enable true"
        );
        assert!(is_secret_path("/etc/docker/server-key.pem"));
        assert!(is_secret_path("/etc/docker/tls/server-key.pem"));
        assert!(is_secret_path("/etc/telegram.secrets"));
        assert!(!is_secret_path("/etc/nftables.conf"));
    }

    #[test]
    fn secret_names() {
        let cases = [
            ("postgres_password", true),
            ("db_pass", true),
            ("PW", true),
            ("apiKey", true),
            ("api_key", true),
            ("auth", true),
            ("basic_auth", true),
            ("aws_credentials", true),
            ("private", true),
            ("ssh_private_key", true),
            ("dbpassword", true),
            ("swarm_worker_token", true),
            ("private_address", false),
            ("docker_tls_key_file", false),
            ("docker_apt_gpg_key_url", false),
            ("docker_apt_gpg_key_checksum", false),
            ("ssh_key_type", false),
            ("bypass", false),
            ("keyboard_layout", false),
            ("author", false),
            ("enable_syslog", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_secret_name(name), want, "{name}");
        }
    }

    #[test]
    fn masks_nested_registered_and_escaped_forms() {
        let vars = json!({
            "db": {"host": "db.internal", "password": "nested-pw-1"},
            "hostvars": {"node1": {"swarm_worker_token": {"stdout": "SWMTKN-1-abc"}}},
            "quoted": {"pass": "it's \"quoted\"\n"},
        });
        let mut r = Redactor::from_vars(vars.as_object().unwrap());
        r.add_var(
            "registered_secret",
            &json!({"stdout": "from-the-host", "rc": 0}),
        );
        for (text, hidden) in [
            ("db nested-pw-1 on db.internal", "nested-pw-1"),
            ("join SWMTKN-1-abc", "SWMTKN-1-abc"),
            ("got from-the-host", "from-the-host"),
            (r#"{"v": "it's \"quoted\""}"#, "quoted"),
            ("echo 'it'\\''s \"quoted\"'", "quoted"),
            ("b64 bmVzdGVkLXB3LTE=", "bmVzdGVkLXB3LTE="),
        ] {
            let out = r.redact(text);
            assert!(!out.contains(hidden), "{text} -> {out}");
            assert!(out.contains(MASK), "{text} -> {out}");
        }
        assert_eq!(r.redact("db.internal"), "db.internal");
    }

    #[test]
    fn output_assignments_are_masked() {
        let r = Redactor::default();
        let cases = [
            (
                "POSTGRES_PASSWORD=hunter22 rest",
                "POSTGRES_PASSWORD=******** rest",
            ),
            (
                "telegram_token: \"123:abcdef\"",
                "telegram_token: \"********\"",
            ),
            (
                "-  url(\"https://api/bot\") token=old-rotated-1",
                "-  url(\"https://api/bot\") token=********",
            ),
            (
                "Authorization: Bearer abc.def.ghi",
                "Authorization: Bearer ********",
            ),
            ("{\"api_key\": \"k-123456\"}", "{\"api_key\": \"********\"}"),
            ("no secrets here: port=8000", "no secrets here: port=8000"),
        ];
        for (text, want) in cases {
            assert_eq!(r.redact_output(text), want, "{text}");
        }
    }

    #[test]
    fn templates_that_use_secret_variables() {
        assert!(mentions_secret(
            "url(\"{{ api }}/bot{{ monitoring_telegram_token }}/x\")"
        ));
        assert!(mentions_secret(
            "{% if db.password is defined %}x{% endif %}"
        ));
        assert!(mentions_secret(
            "{{ hostvars[h].swarm_worker_token.stdout }}"
        ));
        assert!(!mentions_secret(
            "# the token goes here\n{{ private_address }}"
        ));
        assert!(!mentions_secret(
            "listen {{ port }}; key file {{ docker_tls_key_file }}"
        ));
    }
}
