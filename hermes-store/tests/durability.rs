//! The durability mode as it appears in configuration files.

use hermes_store::Durability;
use serde::Deserialize;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct StorageConfig {
    #[serde(default)]
    durability: Durability,
}

#[test]
fn serde_uses_lowercase_names() {
    for (mode, name) in [
        (Durability::Memory, "\"memory\""),
        (Durability::Async, "\"async\""),
        (Durability::Sync, "\"sync\""),
    ] {
        assert_eq!(serde_json::to_string(&mode).unwrap(), name);
        assert_eq!(serde_json::from_str::<Durability>(name).unwrap(), mode);
    }
    assert!(serde_json::from_str::<Durability>("\"fsync\"").is_err());
}

#[test]
fn missing_mode_defaults_to_memory() {
    let config: StorageConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(config.durability, Durability::Memory);
    let config: StorageConfig = serde_json::from_str(r#"{"durability":"sync"}"#).unwrap();
    assert_eq!(config.durability, Durability::Sync);
}
