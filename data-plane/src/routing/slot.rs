//! The slot holding the current routing table. Readers on the hot path load it without
//! locks; a new table replaces the old one whole (`ArcSwap`), and watchers learn the new
//! version.

use super::table::RoutingTable;
use arc_swap::ArcSwapOption;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

/// Where the current table came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    ControlPlane,
    Disk,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::ControlPlane => "control_plane",
            Source::Disk => "disk",
        }
    }
}

/// A table and where it came from, swapped together.
#[derive(Debug)]
pub struct Loaded {
    pub table: Arc<RoutingTable>,
    pub source: Source,
}

#[derive(Debug)]
pub struct RoutingSlot {
    current: ArcSwapOption<Loaded>,
    connected: AtomicBool,
    version: watch::Sender<i64>,
}

impl Default for RoutingSlot {
    fn default() -> Self {
        Self {
            current: ArcSwapOption::empty(),
            connected: AtomicBool::new(false),
            version: watch::channel(0).0,
        }
    }
}

impl RoutingSlot {
    /// The current table, if one is loaded.
    pub fn load(&self) -> Option<Arc<Loaded>> {
        self.current.load_full()
    }

    /// The current table itself.
    pub fn table(&self) -> Option<Arc<RoutingTable>> {
        self.load().map(|l| l.table.clone())
    }

    /// Replaces the table whole.
    pub fn store(&self, table: Arc<RoutingTable>, source: Source) {
        let version = table.version();
        self.current.store(Some(Arc::new(Loaded { table, source })));
        metrics::gauge!("switchboard_routing_version_applied").set(version as f64);
        self.version.send_replace(version);
    }

    /// Marks the current table as the control plane's when it holds `version`.
    pub fn confirm(&self, version: i64) {
        if let Some(loaded) = self.load()
            && loaded.source != Source::ControlPlane
            && loaded.table.version() == version
        {
            self.current.store(Some(Arc::new(Loaded {
                table: loaded.table.clone(),
                source: Source::ControlPlane,
            })));
        }
    }

    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
        metrics::gauge!("switchboard_control_plane_connected").set(f64::from(u8::from(connected)));
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Waits until a table of at least `version` is loaded.
    pub async fn wait_for_version(&self, version: i64) {
        let mut rx = self.version.subscribe();
        let _ = rx.wait_for(|v| *v >= version).await;
    }

    /// Watches the applied version.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.version.subscribe()
    }
}
