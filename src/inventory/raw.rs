//! The inventory file as written: connection settings at the all, group and host levels, in
//! file order.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Connection;

/// Connection settings allowed at the all, group and host levels; the most specific wins.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConn {
    pub(super) address: Option<String>,
    pub(super) private_address: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) user: Option<String>,
    pub(super) key: Option<PathBuf>,
    pub(super) connection: Option<Connection>,
}

impl RawConn {
    pub(super) fn overlay(&mut self, other: &RawConn) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f.clone(); } )* };
        }
        take!(address, private_address, port, user, key, connection);
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAll {
    #[serde(flatten)]
    pub(super) conn: RawConn,
    pub(super) known_hosts: Option<PathBuf>,
    #[serde(default)]
    pub(super) vars: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    #[serde(flatten)]
    pub(super) conn: RawConn,
    #[serde(default)]
    pub(super) vars: Map<String, Value>,
    #[serde(default)]
    pub(super) hosts: indexmap_lite::OrderedMap<Option<RawHost>>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHost {
    #[serde(flatten)]
    pub(super) conn: RawConn,
    #[serde(default)]
    pub(super) vars: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInventory {
    #[serde(default)]
    pub(super) all: RawAll,
    #[serde(default)]
    pub(super) groups: indexmap_lite::OrderedMap<Option<RawGroup>>,
}

/// A mapping that keeps its keys in file order (serde_json's Map sorts them, and host order
/// matters: the first manager is the main manager).
pub(super) mod indexmap_lite {
    use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
    use std::fmt;
    use std::marker::PhantomData;

    #[derive(Debug)]
    pub struct OrderedMap<V>(pub Vec<(String, V)>);

    impl<V> Default for OrderedMap<V> {
        fn default() -> Self {
            OrderedMap(Vec::new())
        }
    }

    impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V2<V>(PhantomData<V>);
            impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
                type Value = OrderedMap<V>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a mapping")
                }
                fn visit_unit<E>(self) -> Result<Self::Value, E> {
                    Ok(OrderedMap(Vec::new()))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                    let mut out = Vec::new();
                    while let Some((k, v)) = m.next_entry::<String, V>()? {
                        out.push((k, v));
                    }
                    Ok(OrderedMap(out))
                }
            }
            d.deserialize_any(V2(PhantomData))
        }
    }
}
