//! A string-keyed map and a set of strings kept as vectors sorted by key, serialised exactly as
//! a map and a set.
//!
//! Why: the join holds the few candles still waiting for a profile (usually one). As a
//! `BTreeMap` it allocated a node for eleven joins, and copied the join into it, for every
//! candle, then freed it when the candle was decided. The vector keeps its room; a lookup
//! among a handful of keys is a few comparisons either way. The checkpoint's bytes are those of
//! the map it replaced.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq)]
pub struct SmallMap<V>(Vec<(String, V)>);

impl<V> Default for SmallMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> SmallMap<V> {
    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.find(key).ok().map(|i| &mut self.0[i].1)
    }

    /// Sets `key` to `value`, giving back the value it replaces.
    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    /// The keys, in order.
    pub fn into_keys(self) -> impl Iterator<Item = String> {
        self.0.into_iter().map(|(k, _)| k)
    }
}

impl<V: Serialize> Serialize for SmallMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for SmallMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Through the map: sorted by key, each key once, whatever order the bytes had.
        Ok(Self(BTreeMap::<String, V>::deserialize(deserializer)?.into_iter().collect()))
    }
}

/// A set of strings as a sorted vector (a candle's decided profiles: one or two), serialised
/// as a set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SmallSet(Vec<String>);

impl SmallSet {
    pub fn contains(&self, key: &str) -> bool {
        self.0.binary_search_by(|k| k.as_str().cmp(key)).is_ok()
    }

    /// Adds `key`; false when it was there.
    pub fn insert(&mut self, key: String) -> bool {
        match self.0.binary_search(&key) {
            Ok(_) => false,
            Err(i) => {
                self.0.insert(i, key);
                true
            }
        }
    }
}

impl FromIterator<String> for SmallSet {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> Self {
        Self(iter.into_iter().collect::<BTreeSet<_>>().into_iter().collect())
    }
}

impl IntoIterator for SmallSet {
    type Item = String;
    type IntoIter = std::vec::IntoIter<String>;

    /// In order.
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Serialize for SmallSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(&self.0)
    }
}

impl<'de> Deserialize<'de> for SmallSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(BTreeSet::<String>::deserialize(deserializer)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_btreemap_and_serialises_as_one() {
        let mut small = SmallMap::default();
        let mut map = BTreeMap::new();
        for (i, key) in ["m", "c", "x", "c", "a", "q", "m"].into_iter().enumerate() {
            assert_eq!(small.insert(key.to_string(), i), map.insert(key.to_string(), i), "insert {key}");
        }
        assert_eq!(small.remove("q"), map.remove("q"));
        assert_eq!(small.remove("nope"), map.remove("nope"));
        assert_eq!(small.len(), map.len());
        assert!(small.iter().eq(map.iter()), "the same entries in the same order");
        assert_eq!(small.get("c"), map.get("c"));
        if let Some(v) = small.get_mut("a") {
            *v = 99;
        }
        map.insert("a".into(), 99);
        let bytes = rmp_serde::to_vec_named(&small).unwrap();
        assert_eq!(bytes, rmp_serde::to_vec_named(&map).unwrap(), "a checkpoint's bytes are the map's");
        let back: SmallMap<usize> = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, small);
    }

    #[test]
    fn the_set_behaves_as_a_btreeset_and_serialises_as_one() {
        let mut small: SmallSet = ["b", "a"].map(String::from).into_iter().collect();
        let mut set: BTreeSet<String> = ["b", "a"].map(String::from).into_iter().collect();
        for key in ["c", "a", "0"] {
            assert_eq!(small.insert(key.into()), set.insert(key.into()), "insert {key}");
        }
        assert!(small.contains("c") && !small.contains("d"));
        let bytes = rmp_serde::to_vec_named(&small).unwrap();
        assert_eq!(bytes, rmp_serde::to_vec_named(&set).unwrap(), "a checkpoint's bytes are the set's");
        let back: SmallSet = rmp_serde::from_slice(&bytes).unwrap();
        assert!(back.clone().into_iter().eq(set.into_iter()));
        assert_eq!(back, small);
    }
}
