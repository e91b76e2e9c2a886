//! The account's app state as WhatsApp's server holds it: per collection, the patches the
//! phone wrote, encrypted and MAC'd with the app-state sync key it shares with its
//! companions. The server cannot read them; it only stores them and hands a companion
//! the patches after the version it already has (`w:sync:app:state`).
//!
//! A phone writes `critical_block` at once after registering, with at least the user's push
//! name (`setting_pushName`); that is where a new companion learns it. The other
//! collections stay empty (version 0).

use std::collections::HashMap;

use rand::RngExt as _;
use wacore_appstate::hash::{HashState, generate_patch_mac};
use wacore_appstate::{ExpandedAppStateKeys, encode_record, expand_app_state_keys};
use waproto::buffa::MessageField;
use waproto::whatsapp as wa;

use crate::phone::AppStateSyncKey;

/// The collection with the push name (and, on a real phone, the block list).
pub const CRITICAL_BLOCK: &str = "critical_block";
/// The schema version WhatsApp stamps on a `setting_pushName` mutation.
const PUSH_NAME_ACTION_VERSION: i32 = 1;
/// The device index a patch written by the primary phone carries.
const PRIMARY_DEVICE_INDEX: u32 = 0;

#[derive(Debug, thiserror::Error)]
pub enum AppStateError {
    #[error("app-state index does not serialize: {0}")]
    Index(#[from] serde_json::Error),
    #[error("app-state hash update failed: {0}")]
    Hash(String),
}

/// One change a patch makes: a SET or REMOVE of the action at `index` (the JSON array
/// WhatsApp indexes actions by, e.g. `["setting_pushName"]`).
pub struct Change {
    pub operation: wa::syncd_mutation::SyncdOperation,
    pub index: Vec<String>,
    pub value: wa::SyncActionValue,
    /// The action's schema version.
    pub version: i32,
}

/// One collection: its ltHash state and every patch from version 1 on.
pub struct Collection {
    name: &'static str,
    state: HashState,
    /// The value MAC each live index MAC was last SET with: a later SET or REMOVE of the
    /// same index takes it out of the ltHash, as the client's own bookkeeping does.
    value_macs: HashMap<Vec<u8>, Vec<u8>>,
    /// Encoded `SyncdPatch`es; the one at position i has version i + 1.
    patches: Vec<Vec<u8>>,
}

impl Collection {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            state: HashState::default(),
            value_macs: HashMap::new(),
            patches: Vec::new(),
        }
    }

    #[cfg(test)]
    fn name(&self) -> &'static str {
        self.name
    }

    /// The collection's current version (0 while empty).
    pub fn version(&self) -> u64 {
        self.state.version
    }

    /// The encoded patches a companion at `version` is missing, oldest first.
    pub fn patches_after(&self, version: u64) -> &[Vec<u8>] {
        usize::try_from(version)
            .ok()
            .and_then(|start| self.patches.get(start..))
            .unwrap_or_default()
    }

    /// Writes one patch the way a phone does: each record encrypted (AES-CBC, random IV)
    /// with a value MAC and an index MAC, the ltHash moved by the value MACs, then the
    /// snapshot MAC over the new ltHash and version, and the patch MAC over all of it.
    pub fn write_patch(
        &mut self,
        key: &AppStateSyncKey,
        changes: &[Change],
    ) -> Result<(), AppStateError> {
        let keys = expand_app_state_keys(&key.key_data);
        let mutations = changes
            .iter()
            .map(|change| encode_change(change, &keys, &key.key_id))
            .collect::<Result<Vec<_>, _>>()?;
        let value_macs = &self.value_macs;
        let (_, hashed) = self.state.update_hash(&mutations, |index_mac, _| {
            Ok(value_macs.get(index_mac).cloned())
        });
        hashed.map_err(|e| AppStateError::Hash(e.to_string()))?;
        for mutation in &mutations {
            let Some(record) = mutation.record.as_option() else {
                continue;
            };
            let Some(index_mac) = record.index.blob.clone() else {
                continue;
            };
            let value_mac = record
                .value
                .blob
                .as_deref()
                .and_then(|blob| blob.get(blob.len().saturating_sub(32)..));
            match (mutation.operation.and_then(|op| op.as_known()), value_mac) {
                (Some(wa::syncd_mutation::SyncdOperation::REMOVE), _) => {
                    self.value_macs.remove(&index_mac);
                }
                (_, Some(value_mac)) => {
                    self.value_macs.insert(index_mac, value_mac.to_vec());
                }
                (_, None) => {}
            }
        }
        self.state.version += 1;
        let version = self.state.version;
        let mut patch = wa::SyncdPatch {
            version: MessageField::some(wa::SyncdVersion {
                version: Some(version),
            }),
            mutations,
            snapshot_mac: Some(
                self.state
                    .generate_snapshot_mac(self.name, &keys.snapshot_mac),
            ),
            key_id: MessageField::some(wa::KeyId {
                id: Some(key.key_id.clone()),
            }),
            device_index: Some(PRIMARY_DEVICE_INDEX),
            ..Default::default()
        };
        patch.patch_mac = Some(generate_patch_mac(
            &patch,
            self.name,
            &keys.patch_mac,
            version,
        ));
        self.patches
            .push(waproto::codec::syncd_patch_to_vec(&patch));
        Ok(())
    }
}

fn encode_change(
    change: &Change,
    keys: &ExpandedAppStateKeys,
    key_id: &[u8],
) -> Result<wa::SyncdMutation, AppStateError> {
    let index = serde_json::to_vec(&change.index)?;
    let mut iv = [0u8; 16];
    rand::make_rng::<rand::rngs::StdRng>().fill(&mut iv[..]);
    let (mutation, _value_mac) = encode_record(
        change.operation,
        &index,
        &change.value,
        keys,
        key_id,
        &iv,
        change.version,
    );
    Ok(mutation)
}

/// The `setting_pushName` SET a phone writes for its user's name.
pub fn push_name_change(name: &str, timestamp_ms: i64) -> Change {
    Change {
        operation: wa::syncd_mutation::SyncdOperation::SET,
        index: vec!["setting_pushName".to_owned()],
        value: wa::SyncActionValue {
            timestamp: Some(timestamp_ms),
            push_name_setting: MessageField::some(wa::sync_action_value::PushNameSetting {
                name: Some(name.to_owned()),
            }),
            ..Default::default()
        },
        version: PUSH_NAME_ACTION_VERSION,
    }
}

/// The collections the server holds for one account.
pub struct AppState {
    collections: Vec<Collection>,
}

impl AppState {
    /// What a phone has written right after registering: `critical_block` version 1 with
    /// the push name, encrypted with `key`.
    pub fn new(key: &AppStateSyncKey, push_name: &str, now_ms: i64) -> Result<Self, AppStateError> {
        let mut critical_block = Collection::new(CRITICAL_BLOCK);
        critical_block.write_patch(key, &[push_name_change(push_name, now_ms)])?;
        Ok(Self {
            collections: vec![critical_block],
        })
    }

    /// The collection `name`, if the phone ever wrote to it.
    pub fn collection(&self, name: &str) -> Option<&Collection> {
        self.collections.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    //! The client's own decoder (the one whatsapp-rust runs on a sync response) must accept
    //! what the phone writes, MACs checked.

    use std::sync::Arc;

    use wacore_appstate::patch_decode::{WAPatchName, parse_patch_lists};
    use wacore_appstate::{AppStateError as DecodeError, process_patch};
    use wacore_binary::builder::NodeBuilder;

    use super::*;

    fn key() -> AppStateSyncKey {
        AppStateSyncKey::generate(1, 7, vec![0, 1], 1_700_000_000_000)
    }

    fn decode_all(
        collection: &Collection,
        key: &AppStateSyncKey,
        state: &mut HashState,
        macs: &mut HashMap<Vec<u8>, Vec<u8>>,
        from: u64,
    ) -> Result<Vec<wacore_appstate::Mutation>, DecodeError> {
        let keys = Arc::new(expand_app_state_keys(&key.key_data));
        let mut decoded = Vec::new();
        for bytes in collection.patches_after(from) {
            let patch =
                waproto::codec::syncd_patch_decode(bytes).map_err(|_| DecodeError::DecodeFailed)?;
            let result = process_patch(
                &patch,
                state,
                |id| {
                    (id == key.key_id.as_slice())
                        .then(|| keys.clone())
                        .ok_or(DecodeError::KeyNotFound)
                },
                |index_mac| Ok(macs.get(index_mac).cloned()),
                true,
                collection.name(),
            )?;
            for removed in &result.removed_index_macs {
                macs.remove(removed);
            }
            for added in result.added_macs {
                macs.insert(added.index_mac, added.value_mac);
            }
            decoded.extend(result.mutations);
        }
        Ok(decoded)
    }

    fn push_name_of(mutation: &wacore_appstate::Mutation) -> Option<&str> {
        mutation
            .action_value
            .as_ref()?
            .push_name_setting
            .as_option()?
            .name
            .as_deref()
    }

    #[test]
    fn the_client_decoder_accepts_the_push_name_patch() {
        let key = key();
        let app_state = AppState::new(&key, "Ana Phone", 1_700_000_000_000).expect("builds");
        let critical = app_state
            .collection(CRITICAL_BLOCK)
            .expect("critical_block");
        assert_eq!(critical.version(), 1);

        let mut state = HashState::default();
        let mut macs = HashMap::new();
        let mutations = decode_all(critical, &key, &mut state, &mut macs, 0).expect("MACs verify");
        assert_eq!(mutations.len(), 1);
        assert_eq!(mutations[0].index, vec!["setting_pushName"]);
        assert_eq!(push_name_of(&mutations[0]), Some("Ana Phone"));
        assert_eq!(state.version, 1);
        // The client's ltHash ends where the phone's does.
        assert_eq!(state.hash, critical.state.hash);
        // At its version there is nothing more to fetch.
        assert!(critical.patches_after(1).is_empty());
        assert!(critical.patches_after(9).is_empty());
    }

    #[test]
    fn a_later_patch_applies_on_top_of_the_first() {
        let key = key();
        let mut collection = Collection::new(CRITICAL_BLOCK);
        collection
            .write_patch(&key, &[push_name_change("Old", 1)])
            .expect("v1");
        collection
            .write_patch(&key, &[push_name_change("New", 2)])
            .expect("v2");

        let mut state = HashState::default();
        let mut macs = HashMap::new();
        decode_all(&collection, &key, &mut state, &mut macs, 0).expect("v1");
        // v2 overwrites v1's value: the snapshot MAC only matches if the old value MAC
        // left the ltHash on both sides.
        assert_eq!(state.version, 2);
        assert!(!state.mac_mismatch_fatal, "snapshot MAC diverged");
        assert_eq!(state.hash, collection.state.hash);

        // A client that had v1 only gets v2.
        let mut at_v1 = HashState::default();
        let mut macs_v1 = HashMap::new();
        let keys = Arc::new(expand_app_state_keys(&key.key_data));
        let first = waproto::codec::syncd_patch_decode(&collection.patches[0]).expect("patch");
        let result = process_patch(
            &first,
            &mut at_v1,
            |_| Ok(keys.clone()),
            |_| Ok(None),
            true,
            CRITICAL_BLOCK,
        )
        .expect("v1 verifies");
        for added in result.added_macs {
            macs_v1.insert(added.index_mac, added.value_mac);
        }
        let rest = decode_all(&collection, &key, &mut at_v1, &mut macs_v1, 1).expect("v2");
        assert_eq!(rest.len(), 1);
        assert_eq!(push_name_of(&rest[0]), Some("New"));
        assert!(!at_v1.mac_mismatch_fatal);
    }

    #[test]
    fn a_wrong_key_fails_the_patch_mac() {
        let key = key();
        let app_state = AppState::new(&key, "Ana", 1).expect("builds");
        let critical = app_state
            .collection(CRITICAL_BLOCK)
            .expect("critical_block");
        let mut other = AppStateSyncKey::generate(1, 7, vec![0, 1], 1);
        other.key_id = key.key_id.clone();
        let result = decode_all(
            critical,
            &other,
            &mut HashState::default(),
            &mut HashMap::new(),
            0,
        );
        assert!(result.is_err(), "{:?}", result.map(|m| m.len()));
    }

    #[test]
    fn the_client_parses_a_collection_node_with_inline_patches() {
        let key = key();
        let app_state = AppState::new(&key, "Ana", 1).expect("builds");
        let critical = app_state
            .collection(CRITICAL_BLOCK)
            .expect("critical_block");
        let node = NodeBuilder::new("iq")
            .children([NodeBuilder::new("sync")
                .children([NodeBuilder::new("collection")
                    .attr("name", CRITICAL_BLOCK)
                    .attr("version", critical.version().to_string())
                    .children([NodeBuilder::new("patches")
                        .children(
                            critical
                                .patches_after(0)
                                .iter()
                                .map(|p| NodeBuilder::new("patch").bytes(p.clone()).build()),
                        )
                        .build()])
                    .build()])
                .build()])
            .build();
        let lists = parse_patch_lists(&node).expect("parses");
        assert_eq!(lists.len(), 1);
        assert_eq!(lists[0].name, WAPatchName::CriticalBlock);
        assert_eq!(lists[0].patches.len(), 1);
        assert!(lists[0].error.is_none());
    }
}
