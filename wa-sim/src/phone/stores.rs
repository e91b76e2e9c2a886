//! In-memory implementations of wacore-libsignal's store traits.
//!
//! wacore-libsignal ships no store implementations, and whatsapp-rust's are tied
//! to its persistence backend, so the simulated phone keeps its Signal state in
//! HashMaps. The phone trusts every identity: a simulator has no user to warn.

use std::collections::HashMap;

use async_trait::async_trait;
use wacore_libsignal::protocol::{
    Direction, IdentityChange, IdentityKey, IdentityKeyPair, IdentityKeyStore, PreKeyId,
    PreKeyRecord, PreKeyStore, ProtocolAddress, SessionRecord, SessionStore, SignalProtocolError,
    SignedPreKeyId, SignedPreKeyRecord, SignedPreKeyStore,
};

type SignalResult<T> = Result<T, SignalProtocolError>;

/// The device's own identity plus the last identity seen for each peer.
pub struct TrustAllIdentityStore {
    identity: IdentityKeyPair,
    registration_id: u32,
    peers: HashMap<ProtocolAddress, IdentityKey>,
}

impl TrustAllIdentityStore {
    pub fn new(identity: IdentityKeyPair, registration_id: u32) -> Self {
        Self {
            identity,
            registration_id,
            peers: HashMap::new(),
        }
    }

    pub fn identity(&self) -> &IdentityKeyPair {
        &self.identity
    }

    pub fn registration_id(&self) -> u32 {
        self.registration_id
    }
}

#[async_trait]
impl IdentityKeyStore for TrustAllIdentityStore {
    async fn get_identity_key_pair(&self) -> SignalResult<IdentityKeyPair> {
        Ok(self.identity.clone())
    }

    async fn get_local_registration_id(&self) -> SignalResult<u32> {
        Ok(self.registration_id)
    }

    async fn save_identity(
        &mut self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
    ) -> SignalResult<IdentityChange> {
        let replaced = self
            .peers
            .insert(address.clone(), *identity)
            .is_some_and(|previous| previous != *identity);
        Ok(IdentityChange::from_changed(replaced))
    }

    async fn is_trusted_identity(
        &self,
        _address: &ProtocolAddress,
        _identity: &IdentityKey,
        _direction: Direction,
    ) -> SignalResult<bool> {
        Ok(true)
    }

    async fn get_identity(&self, address: &ProtocolAddress) -> SignalResult<Option<IdentityKey>> {
        Ok(self.peers.get(address).copied())
    }
}

/// One-time prekeys by id.
#[derive(Default)]
pub struct InMemoryPreKeyStore {
    records: HashMap<PreKeyId, PreKeyRecord>,
}

impl InMemoryPreKeyStore {
    pub fn insert(&mut self, id: PreKeyId, record: PreKeyRecord) {
        self.records.insert(id, record);
    }

    pub fn remove(&mut self, id: PreKeyId) {
        self.records.remove(&id);
    }

    pub fn get(&self, id: PreKeyId) -> Option<&PreKeyRecord> {
        self.records.get(&id)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[async_trait]
impl PreKeyStore for InMemoryPreKeyStore {
    async fn get_pre_key(&self, prekey_id: PreKeyId) -> SignalResult<PreKeyRecord> {
        self.records
            .get(&prekey_id)
            .cloned()
            .ok_or(SignalProtocolError::InvalidPreKeyId)
    }

    async fn save_pre_key(
        &mut self,
        prekey_id: PreKeyId,
        record: &PreKeyRecord,
    ) -> SignalResult<()> {
        self.records.insert(prekey_id, record.clone());
        Ok(())
    }

    async fn remove_pre_key(&mut self, prekey_id: PreKeyId) -> SignalResult<()> {
        self.records.remove(&prekey_id);
        Ok(())
    }
}

/// Signed prekeys by id.
#[derive(Default)]
pub struct InMemorySignedPreKeyStore {
    records: HashMap<SignedPreKeyId, SignedPreKeyRecord>,
}

impl InMemorySignedPreKeyStore {
    pub fn insert(&mut self, id: SignedPreKeyId, record: SignedPreKeyRecord) {
        self.records.insert(id, record);
    }
}

#[async_trait]
impl SignedPreKeyStore for InMemorySignedPreKeyStore {
    async fn get_signed_pre_key(&self, id: SignedPreKeyId) -> SignalResult<SignedPreKeyRecord> {
        self.records
            .get(&id)
            .cloned()
            .ok_or(SignalProtocolError::InvalidSignedPreKeyId)
    }

    async fn save_signed_pre_key(
        &mut self,
        id: SignedPreKeyId,
        record: &SignedPreKeyRecord,
    ) -> SignalResult<()> {
        self.records.insert(id, record.clone());
        Ok(())
    }
}

/// Sessions by peer address.
#[derive(Default)]
pub struct InMemorySessionStore {
    sessions: HashMap<ProtocolAddress, SessionRecord>,
}

impl InMemorySessionStore {
    pub fn get(&self, address: &ProtocolAddress) -> Option<&SessionRecord> {
        self.sessions.get(address)
    }

    pub fn remove(&mut self, address: &ProtocolAddress) -> bool {
        self.sessions.remove(address).is_some()
    }
}

#[async_trait]
impl SessionStore for InMemorySessionStore {
    async fn load_session(&self, address: &ProtocolAddress) -> SignalResult<Option<SessionRecord>> {
        Ok(self.sessions.get(address).cloned())
    }

    async fn has_session(&self, address: &ProtocolAddress) -> SignalResult<bool> {
        Ok(self.sessions.contains_key(address))
    }

    async fn store_session(
        &mut self,
        address: &ProtocolAddress,
        record: SessionRecord,
    ) -> SignalResult<()> {
        self.sessions.insert(address.clone(), record);
        Ok(())
    }
}

/// The four stores one Signal device needs, kept together so a device can lend
/// them to libsignal as separate `&mut dyn` borrows.
pub struct SignalStores {
    pub identity: TrustAllIdentityStore,
    pub prekeys: InMemoryPreKeyStore,
    pub signed_prekeys: InMemorySignedPreKeyStore,
    pub sessions: InMemorySessionStore,
}

impl SignalStores {
    pub fn new(identity: IdentityKeyPair, registration_id: u32) -> Self {
        Self {
            identity: TrustAllIdentityStore::new(identity, registration_id),
            prekeys: InMemoryPreKeyStore::default(),
            signed_prekeys: InMemorySignedPreKeyStore::default(),
            sessions: InMemorySessionStore::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::ready::run_ready;
    use wacore_libsignal::protocol::KeyPair;

    fn identity() -> IdentityKeyPair {
        IdentityKeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>())
    }

    #[test]
    fn identity_store_reports_replaced_identities() {
        let mut store = TrustAllIdentityStore::new(identity(), 7);
        let peer = ProtocolAddress::new("1555:1@s.whatsapp.net", 0u32.into());
        let first = *identity().identity_key();
        let second = *identity().identity_key();
        let change = |store: &mut TrustAllIdentityStore, key| {
            run_ready(store.save_identity(&peer, key)).unwrap().unwrap()
        };
        assert_eq!(change(&mut store, &first), IdentityChange::NewOrUnchanged);
        assert_eq!(change(&mut store, &first), IdentityChange::NewOrUnchanged);
        assert_eq!(
            change(&mut store, &second),
            IdentityChange::ReplacedExisting
        );
        let trusted = run_ready(store.is_trusted_identity(&peer, &first, Direction::Sending));
        assert!(trusted.unwrap().unwrap());
        assert_eq!(
            run_ready(store.get_identity(&peer)).unwrap().unwrap(),
            Some(second)
        );
    }

    #[test]
    fn prekey_store_forgets_removed_keys() {
        let mut store = InMemoryPreKeyStore::default();
        let key = KeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>());
        store.insert(3u32.into(), PreKeyRecord::new(3u32.into(), &key));
        assert!(run_ready(store.get_pre_key(3u32.into())).unwrap().is_ok());
        run_ready(store.remove_pre_key(3u32.into()))
            .unwrap()
            .unwrap();
        let missing = run_ready(store.get_pre_key(3u32.into())).unwrap();
        assert!(matches!(missing, Err(SignalProtocolError::InvalidPreKeyId)));
    }
}
