//! Integration tests, one binary, one module per feature. Tests whose names start with `lab_`
//! need a Docker engine and run against real lab nodes (see `common` for the shared lab).

mod certs;
mod common;
mod lab;
mod provision;
mod ssh;
