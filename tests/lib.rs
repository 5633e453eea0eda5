//! Integration tests, one binary, one module per feature. Tests whose names start with `lab_`
//! need a Docker engine and run against real lab nodes.
mod certs;
mod golden;
mod site;
