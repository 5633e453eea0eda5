//! Templates and expressions: Tera, with the few filters Ansible users reach for.
//!
//! Owns rendering of template files (looked up in several directories, the first that has a
//! name wins), of strings inside plans, and the evaluation of `when`-style expressions. Knows
//! nothing of hosts or tasks: callers pass the variables.

use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use tera::{Context, Tera};

use crate::source::SourcePath;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// `line`: where a syntax error is, when Tera's parser says.
    #[error("template `{name}`{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    File {
        name: String,
        line: Option<usize>,
        message: String,
    },
    #[error("template `{name}` not found in {dirs}")]
    NotFound { name: String, dirs: String },
    #[error("expression `{expr}`: {message}")]
    Expr { expr: String, message: String },
    #[error("cannot read template directory `{dir}`")]
    ReadDir {
        dir: SourcePath,
        #[source]
        source: std::io::Error,
    },
}

/// Template files from an ordered list of directories, on disk or built in.
pub struct Templates {
    tera: Tera,
    dirs: Vec<SourcePath>,
    /// Each template's text as written, for what its source says (the secret variables it
    /// uses).
    sources: HashMap<String, String>,
}

impl Templates {
    /// Loads every file below each directory (missing directories are skipped); for a name found
    /// in several, the first directory wins. Syntax errors are reported here, before any host is
    /// contacted, with the template name and line.
    pub fn load(dirs: &[SourcePath]) -> Result<Templates, TemplateError> {
        let mut files: HashMap<String, SourcePath> = HashMap::new();
        for dir in dirs.iter().rev() {
            if dir.is_dir() {
                let below = dir.files_below().map_err(|source| TemplateError::ReadDir {
                    dir: dir.clone(),
                    source,
                })?;
                files.extend(below);
            }
        }
        let mut tera = base_tera();
        let mut sources = HashMap::new();
        let mut list: Vec<(SourcePath, String)> =
            files.into_iter().map(|(name, path)| (path, name)).collect();
        list.sort();
        for (path, name) in &list {
            let text = path.read_to_string().map_err(|e| TemplateError::File {
                name: name.to_string(),
                line: None,
                message: format!("cannot read `{path}`: {e}"),
            })?;
            tera.add_raw_template(name, &text).map_err(|e| {
                let message = tera_message(&e);
                TemplateError::File {
                    name: name.to_string(),
                    line: syntax_error_line(&message),
                    message,
                }
            })?;
            sources.insert(name.to_string(), text);
        }
        Ok(Templates {
            tera,
            dirs: dirs.to_vec(),
            sources,
        })
    }

    /// The text of template `name` as written.
    pub fn source(&self, name: &str) -> Option<&str> {
        self.sources.get(name).map(String::as_str)
    }

    pub fn has(&self, name: &str) -> bool {
        self.tera.get_template_names().any(|n| n == name)
    }

    /// Renders a template file with `vars` (a JSON object).
    pub fn render(&self, name: &str, vars: &Value) -> Result<String, TemplateError> {
        if !self.has(name) {
            return Err(TemplateError::NotFound {
                name: name.to_string(),
                dirs: self
                    .dirs
                    .iter()
                    .map(|d| format!("`{d}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        self.tera
            .render(name, &context(vars))
            .map_err(|e| TemplateError::File {
                name: name.to_string(),
                line: None,
                message: tera_message(&e),
            })
    }
}

fn context(vars: &Value) -> Context {
    Context::from_value(vars.clone()).unwrap_or_default()
}

/// Tera's errors nest the useful part (the line, the missing variable) in their sources.
fn tera_message(e: &tera::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = std::error::Error::source(e);
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts
        .into_iter()
        .filter(|p| !p.starts_with("Failed to render") && !p.starts_with("Failed to parse"))
        .collect::<Vec<_>>()
        .join(": ")
        .trim()
        .to_string()
}

/// The line of a syntax error in Tera's message (` --> 3:8`): its errors carry no location of
/// their own.
fn syntax_error_line(message: &str) -> Option<usize> {
    let (_, rest) = message.split_once("--> ")?;
    let (line, _) = rest.split_once(':')?;
    line.parse().ok()
}

fn base_tera() -> Tera {
    let mut tera = Tera::default();
    // Config files, not HTML: never escape.
    tera.autoescape_on(vec![]);
    tera.register_filter("bool", filter_bool);
    tera.register_filter("to_json", |v: &Value, _: &HashMap<String, Value>| {
        Ok(Value::String(serde_json::to_string(v).unwrap_or_default()))
    });
    tera.register_filter("quote", |v: &Value, _: &HashMap<String, Value>| {
        let s = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Ok(Value::String(shell_quote(&s)))
    });
    tera
}

fn filter_bool(v: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::Bool(truthy(v)))
}

/// Ansible's notion of truth for values written in YAML or INI: `yes`, `true`, `on`, `1`.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "yes" | "true" | "on" | "1" | "y"
        ),
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Single-quotes for POSIX sh.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

thread_local! {
    static STRINGS: RefCell<Tera> = RefCell::new(base_tera());
}

fn render_one(src: &str, vars: &Value) -> Result<String, String> {
    STRINGS.with(|t| {
        t.borrow_mut()
            .render_str(src, &context(vars))
            .map_err(|e| tera_message(&e))
    })
}

/// Renders a string from a plan. A string without `{{`/`{%` is returned as is.
pub fn render_str(src: &str, vars: &Value) -> Result<String, TemplateError> {
    if !src.contains("{{") && !src.contains("{%") {
        return Ok(src.to_string());
    }
    render_one(src, vars).map_err(|message| TemplateError::Expr {
        expr: src.to_string(),
        message,
    })
}

/// Renders every string inside a YAML/JSON value. A string that is exactly one `{{ expr }}`
/// keeps the expression's type (a list stays a list, a bool a bool), as Ansible does.
pub fn render_value(v: &Value, vars: &Value) -> Result<Value, TemplateError> {
    Ok(match v {
        Value::String(s) => {
            // Only a string that is one expression, nothing around it, keeps the value's type:
            // `"{{ x }}\n"` is text with a newline, as in Ansible.
            if let Some(inner) = s.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
                if !inner.contains("{{") && !inner.contains("}}") {
                    // `set` takes any expression, filters included; `(a | f) | g` does not parse.
                    let json = render_one(
                        &format!("{{% set minipaas_value = {inner} %}}{{{{ minipaas_value | json_encode() }}}}"),
                        vars,
                    )
                        .map_err(|message| TemplateError::Expr {
                            expr: s.clone(),
                            message,
                        })?;
                    return Ok(serde_json::from_str(&json).unwrap_or(Value::String(json)));
                }
            }
            Value::String(render_str(s, vars)?)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| render_value(x, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), render_value(x, vars)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

/// Evaluates a condition (`when`, `changed_when`, `failed_when`): a Tera expression, optionally
/// wrapped in `{{ }}`, or a literal boolean.
pub fn eval_bool(expr: &Value, vars: &Value) -> Result<bool, TemplateError> {
    let src = match expr {
        Value::String(s) => s.trim(),
        other => return Ok(truthy(other)),
    };
    let inner = src
        .strip_prefix("{{")
        .and_then(|r| r.strip_suffix("}}"))
        .unwrap_or(src)
        .trim();
    let out = render_one(
        &format!("{{% if {inner} %}}true{{% else %}}false{{% endif %}}"),
        vars,
    )
    .map_err(|message| TemplateError::Expr {
        expr: src.to_string(),
        message,
    })?;
    Ok(out == "true")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_values_and_conditions() {
        let vars = json!({"ports": [80, 443], "name": "web", "on": "yes", "n": 3});
        assert_eq!(render_str("hi {{ name }}", &vars).unwrap(), "hi web");
        assert_eq!(render_str("no template", &vars).unwrap(), "no template");
        assert_eq!(
            render_value(&json!("{{ ports }}"), &vars).unwrap(),
            json!([80, 443])
        );
        assert_eq!(
            render_value(&json!({"a": ["{{ n }}"]}), &vars).unwrap(),
            json!({"a": [3]})
        );
        assert_eq!(
            render_value(&json!("{{ missing | default(value=[1]) }}"), &vars).unwrap(),
            json!([1])
        );
        assert_eq!(
            render_value(&json!("{{ n > 2 and on | bool }}"), &vars).unwrap(),
            json!(true)
        );
        let t = |e: &str| eval_bool(&json!(e), &vars).unwrap();
        assert!(t("n > 2"));
        assert!(!t("{{ n > 5 }}"));
        assert!(t("on | bool and name == 'web'"));
        assert!(t("missing is not defined"));
        assert!(eval_bool(&json!(true), &vars).unwrap());
    }

    #[test]
    fn undefined_variable_is_an_error_naming_it() {
        let e = render_str("{{ nope }}", &json!({}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn file_syntax_error_names_template_and_line() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("fw")).unwrap();
        std::fs::write(d.path().join("fw/a.conf"), "ok\nok\n{% if %}\n").unwrap();
        let e = Templates::load(&[SourcePath::disk(d.path())])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("template `fw/a.conf` line 3: "), "{e}");
    }

    #[test]
    fn first_directory_wins() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("x"), "A {{ v }}").unwrap();
        std::fs::write(b.path().join("x"), "B").unwrap();
        std::fs::write(b.path().join("y"), "Y").unwrap();
        let t = Templates::load(&[SourcePath::disk(a.path()), SourcePath::disk(b.path())]).unwrap();
        assert_eq!(t.render("x", &json!({"v": 1})).unwrap(), "A 1");
        assert_eq!(t.render("y", &json!({})).unwrap(), "Y");
        assert!(t.render("z", &json!({})).is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/etc/a.conf"), "/etc/a.conf");
        assert_eq!(shell_quote("a b'c"), "'a b'\\''c'");
        assert_eq!(shell_quote(""), "''");
    }
}
