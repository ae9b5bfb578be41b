//! A small map whose entries expire: what the hot paths read instead of the store. Entries are
//! trusted for `ttl`, so a change made by another instance is seen after at most that long;
//! changes made here drop their entries at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    max_entries: usize,
    map: RwLock<HashMap<K, (V, Instant)>>,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            ttl,
            max_entries,
            map: RwLock::new(HashMap::new()),
        }
    }

    pub fn get(&self, k: &K) -> Option<V> {
        let map = self.map.read().ok()?;
        let (v, at) = map.get(k)?;
        (at.elapsed() < self.ttl).then(|| v.clone())
    }

    pub fn put(&self, k: K, v: V) {
        if let Ok(mut map) = self.map.write() {
            if map.len() >= self.max_entries {
                let ttl = self.ttl;
                map.retain(|_, (_, at)| at.elapsed() < ttl);
                if map.len() >= self.max_entries {
                    map.clear();
                }
            }
            map.insert(k, (v, Instant::now()));
        }
    }

    /// Drops every entry for which `keep` is false.
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        if let Ok(mut map) = self.map.write() {
            map.retain(|k, (v, _)| keep(k, v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_dropped() {
        let c = TtlCache::new(Duration::from_secs(60), 2);
        c.put(1, "a");
        c.put(2, "b");
        assert_eq!(c.get(&1), Some("a"));
        c.retain(|k, _| *k != 1);
        assert_eq!(c.get(&1), None);
        let short = TtlCache::new(Duration::ZERO, 2);
        short.put(1, "a");
        assert_eq!(short.get(&1), None);
    }

    #[test]
    fn the_map_stays_bounded() {
        let c = TtlCache::new(Duration::from_secs(60), 2);
        for i in 0..10 {
            c.put(i, i);
        }
        assert!(c.map.read().unwrap().len() <= 2);
        assert_eq!(c.get(&9), Some(9));
    }
}
