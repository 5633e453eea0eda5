//! `ENV/caddy.json`: Caddy's JSON config, one HTTP server on the runtime's port whose routes send
//! `{host, path}` to the tasks of `<stack>_<service>` on `<port>`. minipaas owns the file: it
//! reads back only the shape it writes, and keeps routes ordered most specific first so `/` never
//! shadows `/api`.
//!
//! Zero-downtime is Swarm's and Caddy's work together: Caddy resolves `tasks.<stack>_<service>`
//! every second (Swarm lists a task there only once its healthcheck passed, and takes it out
//! before stopping it), balances over the task addresses, and retries another task when one
//! refuses or drops a request. A canary service that carries the alias `<stack>_<service>` joins
//! the same list, so traffic splits by replica count.

use std::cmp::Reverse;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::DeployError;

/// The server's name in `apps.http.servers`.
const SERVER: &str = "minipaas";

/// A parsed `code route` URL: `[http[s]://]HOST[/PATH]` or `/PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteUrl {
    pub host: Option<String>,
    /// Normalised: `/` or `/x/y` (no trailing `/` or `/*`).
    pub path: String,
    /// `http://` given: Caddy must not manage a certificate for the host.
    pub plain_http: bool,
}

impl RouteUrl {
    pub fn parse(url: &str) -> Result<RouteUrl, DeployError> {
        let bad = |problem| DeployError::BadUrl {
            url: url.to_string(),
            problem,
        };
        let (plain_http, rest) = if let Some(r) = url.strip_prefix("http://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (false, r)
        } else if url.contains("://") {
            return Err(bad("only http:// and https:// are served"));
        } else {
            (false, url)
        };
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host.contains(':') {
            return Err(bad("give no port: Caddy listens on runtime.http_port"));
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '*')
        {
            return Err(bad("the host may hold letters, digits, `-`, `.` and `*`"));
        }
        if path.contains(['?', '#', ' ']) {
            return Err(bad("the path may not hold a query, a fragment or spaces"));
        }
        let trimmed = path.trim_end_matches('*').trim_end_matches('/');
        if trimmed.contains('*') {
            return Err(bad("`*` is only allowed at the end of the path"));
        }
        Ok(RouteUrl {
            host: (!host.is_empty()).then(|| host.to_ascii_lowercase()),
            path: if trimmed.is_empty() {
                "/".into()
            } else {
                trimmed.into()
            },
            plain_http,
        })
    }
}

/// One route as minipaas models it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub host: Option<String>,
    pub path: String,
    /// `<stack>_<service>:<port>`.
    pub dial: String,
}

impl Route {
    /// Most specific first: longer paths, then host-specific before host-less; ties by name so
    /// the order never depends on insertion.
    fn sort_key(&self) -> (Reverse<usize>, bool, Option<String>, String) {
        (
            Reverse(if self.path == "/" { 0 } else { self.path.len() }),
            self.host.is_none(),
            self.host.clone(),
            self.path.clone(),
        )
    }
}

/// The routes and the hosts served without automatic HTTPS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Routes {
    pub routes: Vec<Route>,
    /// Sorted, unique.
    pub plain_http_hosts: Vec<String>,
}

impl Routes {
    /// Adds `route`, replacing one with the same host and path; keeps the order.
    pub fn set(&mut self, route: Route, plain_http: bool) {
        self.routes
            .retain(|r| !(r.host == route.host && r.path == route.path));
        if let Some(host) = &route.host {
            let listed = self.plain_http_hosts.iter().position(|h| h == host);
            match (plain_http, listed) {
                (true, None) => self.plain_http_hosts.push(host.clone()),
                (false, Some(i)) => {
                    self.plain_http_hosts.remove(i);
                }
                _ => {}
            }
        }
        self.routes.push(route);
        self.normalise();
    }

    fn normalise(&mut self) {
        self.routes.sort_by_key(Route::sort_key);
        self.plain_http_hosts.sort();
        self.plain_http_hosts.dedup();
        // A host no route names any more needs no exception.
        let routes = &self.routes;
        self.plain_http_hosts
            .retain(|h| routes.iter().any(|r| r.host.as_ref() == Some(h)));
    }

    /// Reads the routes back from `path`; a missing file has none.
    pub fn load(path: &Path) -> Result<Routes, DeployError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Routes::default()),
            Err(source) => {
                return Err(DeployError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let config: Config = serde_json::from_str(&text).map_err(|source| DeployError::Json {
            path: path.to_path_buf(),
            line: source.line(),
            source,
        })?;
        let mut out = Routes::default();
        let Some(server) = config.apps.http.servers.get(SERVER) else {
            return Ok(out);
        };
        for r in &server.routes {
            let dial = r.handle.first().map(Handler::dial).unwrap_or_default();
            let bad = || DeployError::BadRoute {
                path: path.to_path_buf(),
                dial: dial.clone(),
            };
            let m = r.matchers.first();
            let host = match m.map(|m| m.host.as_slice()) {
                None | Some([]) => None,
                Some([h]) => Some(h.clone()),
                Some(_) => return Err(bad()),
            };
            let path = match m.map(|m| m.path.as_slice()) {
                None | Some([]) => "/".to_string(),
                Some([p, _]) => p.clone(),
                Some(_) => return Err(bad()),
            };
            if dial.is_empty() {
                return Err(bad());
            }
            out.routes.push(Route { host, path, dial });
        }
        if let Some(auto) = &server.automatic_https {
            out.plain_http_hosts = auto.skip.clone();
        }
        out.normalise();
        Ok(out)
    }

    /// The whole caddy.json, pretty-printed with a final newline.
    pub fn render(&self, http_port: u16) -> String {
        let routes = self
            .routes
            .iter()
            .map(|r| {
                let path = if r.path == "/" {
                    Vec::new()
                } else {
                    // `/api` itself and everything under it, not `/apix`.
                    vec![r.path.clone(), format!("{}/*", r.path)]
                };
                let host: Vec<String> = r.host.iter().cloned().collect();
                CaddyRoute {
                    matchers: if host.is_empty() && path.is_empty() {
                        Vec::new()
                    } else {
                        vec![Matcher { host, path }]
                    },
                    handle: vec![Handler::to_tasks(&r.dial)],
                    terminal: true,
                }
            })
            .collect();
        let port = 2019;
        let config = Config {
            admin: Admin {
                // Loopback only: minipaas reaches it through `docker exec`; on the network, any
                // container could rewrite the routes.
                listen: format!("localhost:{port}"),
                origins: vec![format!("localhost:{port}"), format!("127.0.0.1:{port}")],
            },
            apps: Apps {
                http: HttpApp {
                    servers: [(
                        SERVER.to_string(),
                        Server {
                            listen: vec![format!(":{http_port}")],
                            routes,
                            automatic_https: (!self.plain_http_hosts.is_empty()).then(|| {
                                AutoHttps {
                                    skip: self.plain_http_hosts.clone(),
                                }
                            }),
                        },
                    )]
                    .into(),
                },
            },
        };
        // Plain structs and strings: serialization cannot fail.
        let mut text = serde_json::to_string_pretty(&config).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    admin: Admin,
    apps: Apps,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Admin {
    listen: String,
    #[serde(default)]
    origins: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Apps {
    http: HttpApp,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpApp {
    servers: std::collections::BTreeMap<String, Server>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Server {
    listen: Vec<String>,
    #[serde(default)]
    routes: Vec<CaddyRoute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    automatic_https: Option<AutoHttps>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoHttps {
    skip: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaddyRoute {
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    matchers: Vec<Matcher>,
    handle: Vec<Handler>,
    #[serde(default)]
    terminal: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Matcher {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    host: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    path: Vec<String>,
}

/// A `reverse_proxy` handler. Files written before dynamic upstreams had one static upstream;
/// they are still read.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Handler {
    handler: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    upstreams: Vec<Upstream>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dynamic_upstreams: Option<DynamicUpstreams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    load_balancing: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    health_checks: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transport: Option<serde_json::Value>,
}

/// Task addresses from the swarm's DNS (`tasks.<service>` has one A record per ready task).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DynamicUpstreams {
    source: String,
    name: String,
    port: String,
    refresh: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Upstream {
    dial: String,
}

impl Handler {
    /// Proxies to every ready task of the service `dial` names (`<service>:<port>`).
    fn to_tasks(dial: &str) -> Handler {
        let (service, port) = dial.rsplit_once(':').unwrap_or((dial, "80"));
        Handler {
            handler: "reverse_proxy".into(),
            upstreams: Vec::new(),
            dynamic_upstreams: Some(DynamicUpstreams {
                source: "a".into(),
                name: format!("tasks.{service}"),
                port: port.into(),
                // How long a stopped task can still be picked: the app's drain time must
                // be longer (the example app drains for 3 s).
                refresh: "1s".into(),
            }),
            // A task that refuses, times out or drops a request is skipped for 10 s and the
            // request goes to another one: idempotent requests on any error, others only
            // when the connection failed, so nothing is sent twice.
            load_balancing: Some(serde_json::json!({
                "selection_policy": {"policy": "round_robin"},
                "try_duration": "5s",
                "try_interval": "250ms",
                "retry_match": [{"method": ["GET", "HEAD", "OPTIONS"]}]
            })),
            health_checks: Some(serde_json::json!({
                "passive": {"fail_duration": "10s", "max_fails": 1}
            })),
            transport: Some(serde_json::json!({"protocol": "http", "dial_timeout": "2s"})),
        }
    }

    /// The `<service>:<port>` this handler proxies to, in either shape.
    fn dial(&self) -> String {
        if let Some(d) = &self.dynamic_upstreams {
            let service = d.name.strip_prefix("tasks.").unwrap_or(&d.name);
            return format!("{service}:{}", d.port);
        }
        self.upstreams
            .first()
            .map(|u| u.dial.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, path: &str, dial: &str) -> Route {
        Route {
            host: host.map(String::from),
            path: path.into(),
            dial: dial.into(),
        }
    }

    #[test]
    fn url_forms() {
        let cases = [
            ("/", None, "/", false),
            ("/api/", None, "/api", false),
            ("/api/*", None, "/api", false),
            ("http://Example.com", Some("example.com"), "/", true),
            (
                "https://a.example.com/x/y",
                Some("a.example.com"),
                "/x/y",
                false,
            ),
            ("example.com/x", Some("example.com"), "/x", false),
        ];
        for (url, host, path, plain) in cases {
            let u = RouteUrl::parse(url).unwrap();
            assert_eq!(
                (u.host.as_deref(), u.path.as_str(), u.plain_http),
                (host, path, plain),
                "{url}"
            );
        }
        for bad in ["ftp://x/", "x.com:8080/", "/a*/b", "/a?b=1", "bad host/"] {
            assert!(RouteUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn most_specific_first_whatever_the_insertion_order() {
        let all = [
            route(None, "/", "s_web:80"),
            route(Some("a.com"), "/", "s_site:80"),
            route(None, "/api", "s_api:80"),
            route(Some("a.com"), "/api/v2", "s_v2:80"),
            route(Some("a.com"), "/api", "s_api2:80"),
        ];
        let want = vec![
            all[3].clone(),
            all[4].clone(),
            all[2].clone(),
            all[1].clone(),
            all[0].clone(),
        ];
        for rotation in 0..all.len() {
            let mut routes = Routes::default();
            for i in 0..all.len() {
                routes.set(all[(i + rotation) % all.len()].clone(), false);
            }
            assert_eq!(routes.routes, want, "rotation {rotation}");
        }
    }

    #[test]
    fn same_host_and_path_replaces_and_round_trips() {
        let mut routes = Routes::default();
        routes.set(route(Some("a.com"), "/", "s_web:80"), true);
        routes.set(route(Some("a.com"), "/", "s_web:8080"), true);
        routes.set(route(None, "/api", "s_api:80"), false);
        assert_eq!(routes.routes.len(), 2);
        assert_eq!(routes.plain_http_hosts, vec!["a.com".to_string()]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("caddy.json");
        let text = routes.render(8000);
        std::fs::write(&path, &text).unwrap();
        let back = Routes::load(&path).unwrap();
        assert_eq!(back, routes);
        assert_eq!(back.render(8000), text);
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let server = &json["apps"]["http"]["servers"]["minipaas"];
        assert_eq!(server["listen"][0], ":8000");
        assert_eq!(server["routes"][0]["match"][0]["path"][1], "/api/*");
        assert_eq!(server["automatic_https"]["skip"][0], "a.com");
        // Replacing the http:// route with an https one drops the exception.
        routes.set(route(Some("a.com"), "/", "s_web:80"), false);
        assert!(routes.plain_http_hosts.is_empty());
    }

    #[test]
    fn static_upstream_files_still_load_and_render_dynamic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("caddy.json");
        let legacy = r#"{"admin":{"listen":"localhost:2019"},"apps":{"http":{"servers":{"minipaas":{
            "listen":[":8000"],"routes":[{"handle":[{"handler":"reverse_proxy",
            "upstreams":[{"dial":"s_web:8000"}]}],"terminal":true}]}}}}}"#;
        std::fs::write(&path, legacy).unwrap();
        let routes = Routes::load(&path).unwrap();
        assert_eq!(routes.routes[0].dial, "s_web:8000");
        let json: serde_json::Value = serde_json::from_str(&routes.render(8000)).unwrap();
        let h = &json["apps"]["http"]["servers"]["minipaas"]["routes"][0]["handle"][0];
        assert_eq!(h["dynamic_upstreams"]["name"], "tasks.s_web");
        assert_eq!(h["dynamic_upstreams"]["port"], "8000");
        assert!(h.get("upstreams").is_none());
    }
}
