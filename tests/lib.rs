//! Integration tests, one binary, one module per feature. Tests whose names start with `lab_`
//! need a Docker engine and run against real lab nodes (see `common` for the shared lab,
//! `common::site` for the site lab); those starting with `sql_` need PostgreSQL (see
//! `common::pg`). `lab_images_*` build and run images on the local engine without lab nodes.
//! Helpers live in `common`; a feature's module uses no other feature's module.

mod architecture;
mod certs;
mod code;
mod common;
mod day2;
mod deploy;
mod docs;
mod firewall;
mod golden;
mod images;
mod inject;
mod install;
mod lab;
mod managers;
mod provision;
mod release;
mod rolling;
mod secrets;
mod site;
mod sql;
mod ssh;
