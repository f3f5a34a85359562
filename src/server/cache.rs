//! The frame cache: encoded frames, least recently used evicted first, bounded by bytes rather than entries (a
//! 1920×1080 frame weighs ten 320×240 ones). Values are shared (`Arc`), so a hit copies no image bytes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::web::Bytes;
use lru::LruCache;

use crate::encode::ImageFormat;
use crate::report::FrameStatus;

/// Which frame, in which encoding. Everything else that decides the bytes (model, size, look, backend,
/// fallback, mesh settings) is fixed for the server's lifetime and lives in each sequence's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameKey {
    /// The sequence's position in the server's list.
    pub sequence: u32,
    /// 0-based video frame index.
    pub index: u32,
    pub format: ImageFormat,
}

/// Where a frame's bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Rendered by this server.
    Rendered,
    /// Read from the sequence's pre-rendered folder.
    Prerendered,
}

/// What happened to a frame, as the headers and the stream report it.
#[derive(Clone, Debug, PartialEq)]
pub struct FrameMeta {
    pub status: FrameStatus,
    pub reason: Option<String>,
    /// 0-based index of the frame whose mesh a fallback shows.
    pub source: Option<usize>,
    pub persons: u32,
}

/// An encoded frame. `bytes` is empty for a skipped frame (`--fallback skip`).
#[derive(Clone, Debug)]
pub struct EncodedFrame {
    pub bytes: Bytes,
    pub meta: FrameMeta,
    pub origin: Origin,
    /// Reading, posing and drawing (0 for pre-rendered frames).
    pub render_ms: f64,
    pub encode_ms: f64,
}

/// Bytes charged per entry on top of the image: the key, the record, the LRU links.
const ENTRY_OVERHEAD_BYTES: usize = 256;

impl EncodedFrame {
    /// What the entry costs in the cache.
    pub fn weight(&self) -> usize {
        self.bytes.len() + ENTRY_OVERHEAD_BYTES + self.meta.reason.as_ref().map_or(0, String::len)
    }
}

struct Inner {
    entries: LruCache<FrameKey, std::sync::Arc<EncodedFrame>>,
    bytes: usize,
}

/// A byte-bounded LRU of encoded frames.
pub struct FrameCache {
    inner: Mutex<Inner>,
    capacity_bytes: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

/// The cache's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub bytes: usize,
    pub capacity_bytes: usize,
    pub entries: usize,
}

impl FrameCache {
    pub fn new(capacity_bytes: usize) -> FrameCache {
        FrameCache {
            inner: Mutex::new(Inner {
                entries: LruCache::unbounded(),
                bytes: 0,
            }),
            capacity_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every update is one step): keep going.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The frame, marking it recently used; counts a hit or a miss.
    pub fn get(&self, key: &FrameKey) -> Option<std::sync::Arc<EncodedFrame>> {
        let found = self.lock().entries.get(key).cloned();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// The frame without counting or reordering (for checks that are not requests).
    pub fn peek(&self, key: &FrameKey) -> Option<std::sync::Arc<EncodedFrame>> {
        self.lock().entries.peek(key).cloned()
    }

    pub fn contains(&self, key: &FrameKey) -> bool {
        self.lock().entries.contains(key)
    }

    /// Stores a frame, evicting least recently used ones until the total is within the capacity. A frame larger
    /// than the whole capacity is not stored.
    pub fn insert(&self, key: FrameKey, frame: std::sync::Arc<EncodedFrame>) {
        let weight = frame.weight();
        if weight > self.capacity_bytes {
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.entries.put(key, frame) {
            inner.bytes -= old.weight();
        }
        inner.bytes += weight;
        while inner.bytes > self.capacity_bytes {
            let Some((_, evicted)) = inner.entries.pop_lru() else {
                break;
            };
            inner.bytes -= evicted.weight();
            self.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> CacheStats {
        let inner = self.lock();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            bytes: inner.bytes,
            capacity_bytes: self.capacity_bytes,
            entries: inner.entries.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn frame(bytes: usize) -> Arc<EncodedFrame> {
        Arc::new(EncodedFrame {
            bytes: Bytes::from(vec![0u8; bytes]),
            meta: FrameMeta {
                status: FrameStatus::Ok,
                reason: None,
                source: None,
                persons: 1,
            },
            origin: Origin::Rendered,
            render_ms: 0.0,
            encode_ms: 0.0,
        })
    }

    fn key(index: u32) -> FrameKey {
        FrameKey {
            sequence: 0,
            index,
            format: ImageFormat::Png,
        }
    }

    #[test]
    fn the_cache_never_holds_more_bytes_than_its_capacity() {
        let cache = FrameCache::new(10_000);
        for index in 0..100 {
            cache.insert(key(index), frame(1000 + index as usize * 37));
            assert!(cache.stats().bytes <= 10_000);
        }
        let stats = cache.stats();
        assert!(stats.entries > 1 && stats.evictions > 0);
        assert!(cache.peek(&key(99)).is_some(), "the newest survives");
        assert!(cache.peek(&key(0)).is_none(), "the oldest went first");
    }

    #[test]
    fn recently_used_frames_outlive_older_ones() {
        let cache = FrameCache::new(3 * (1000 + ENTRY_OVERHEAD_BYTES));
        for index in 0..3 {
            cache.insert(key(index), frame(1000));
        }
        assert!(cache.get(&key(0)).is_some());
        cache.insert(key(3), frame(1000));
        assert!(cache.peek(&key(0)).is_some());
        assert!(cache.peek(&key(1)).is_none());
    }

    #[test]
    fn a_frame_larger_than_the_cache_is_not_kept() {
        let cache = FrameCache::new(500);
        cache.insert(key(0), frame(1000));
        assert_eq!(cache.stats().entries, 0);
        assert_eq!(cache.stats().bytes, 0);
    }
}
