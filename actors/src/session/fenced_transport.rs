//! A session's WhatsApp connections, tied to its lease: none is opened without the lease,
//! nothing is sent on one once the lease is lost, and the open one can be closed at once
//! when that happens. The client's own `disconnect` flushes its state to the database
//! before it closes the socket, so a node whose database hangs would stay logged in, past
//! its deadline and into the next owner's connection, if it had only that.

use std::sync::{Arc, Mutex, Weak};

use whatsapp_rust::anyhow;
use whatsapp_rust::async_channel::Receiver;
use whatsapp_rust::transport::{
    TokioWebSocketTransportFactory, Transport, TransportEvent, TransportFactory,
};

use crate::lease::Fence;

/// Makes the connections of one session's client under its lease. Clones share the
/// connection made last.
#[derive(Clone)]
pub struct FencedTransports {
    inner: Arc<TokioWebSocketTransportFactory>,
    fence: Fence,
    current: Arc<Mutex<Option<Weak<dyn Transport>>>>,
}

impl FencedTransports {
    pub fn new(inner: TokioWebSocketTransportFactory, fence: Fence) -> Self {
        Self {
            inner: Arc::new(inner),
            fence,
            current: Arc::new(Mutex::new(None)),
        }
    }

    /// Closes the connection made last, if it is still open.
    pub async fn close_current(&self) {
        let current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .and_then(Weak::upgrade);
        if let Some(transport) = current {
            transport.disconnect().await;
        }
    }
}

#[async_trait::async_trait]
impl TransportFactory for FencedTransports {
    async fn create_transport(
        &self,
    ) -> Result<(Arc<dyn Transport>, Receiver<TransportEvent>), anyhow::Error> {
        self.fence.check()?;
        let (inner, events) = self.inner.create_transport().await?;
        let transport: Arc<dyn Transport> = Arc::new(Fenced {
            inner,
            fence: self.fence.clone(),
        });
        *self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::downgrade(&transport));
        // Lost while connecting: whoever closes on the loss may have looked too early.
        if let Err(lost) = self.fence.check() {
            transport.disconnect().await;
            return Err(lost.into());
        }
        Ok((transport, events))
    }
}

/// One connection: sends only while the lease holds.
struct Fenced {
    inner: Arc<dyn Transport>,
    fence: Fence,
}

#[async_trait::async_trait]
impl Transport for Fenced {
    async fn send(&self, data: whatsapp_rust::bytes::Bytes) -> Result<(), anyhow::Error> {
        self.fence.check()?;
        self.inner.send(data).await
    }

    async fn disconnect(&self) {
        self.inner.disconnect().await;
    }

    fn resource_report(&self) -> Option<whatsapp_rust::wacore::stats::TransportResourceReport> {
        self.inner.resource_report()
    }
}
