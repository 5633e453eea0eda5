//! Keeps secrets out of everything the engine reports: values of variables whose names say
//! they are secret, and the content of files whose paths say so.

use serde_json::{Map, Value};

const MASK: &str = "********";
const SECRET_WORDS: &[&str] = &["password", "passwd", "token", "secret", "key"];

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a value containing another is masked whole.
    values: Vec<String>,
}

/// A variable name that says its value is secret.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| n.contains(w))
}

impl Redactor {
    /// Collects the string values of secret-named variables and of those listed in
    /// `secret_vars`. Values shorter than 4 characters are left: masking them would garble
    /// every message while hiding nothing.
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
        let mut values = Vec::new();
        for (k, v) in vars {
            if is_secret_name(k) || listed.contains(k) {
                collect(v, &mut values);
            }
        }
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Redactor { values }
    }

    pub fn add(&mut self, value: &str) {
        if value.len() >= 4 {
            self.values.push(value.to_string());
            self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
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
}

fn collect(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.len() >= 4 => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        Value::Object(o) => o.values().for_each(|x| collect(x, out)),
        _ => {}
    }
}

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
        assert!(is_secret_path("/etc/telegram.secrets"));
        assert!(!is_secret_path("/etc/nftables.conf"));
    }
}
