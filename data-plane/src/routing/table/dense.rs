//! Dense storage for the routing table's large collections: the items in one vector, found
//! by key through a hash table of their positions. A slot costs nine bytes (a `u32`
//! position, 32 bits of the key's hash so that growing the table never reads the items,
//! and a control byte) instead of a copy of key and value, so a million numbers or triggers
//! take their own size plus ~18 MB, where a `HashMap` of them took twice their size in
//! half-empty buckets. Secondary indexes ([`Positions`]), built once with their final size,
//! hold bare positions.

use hashbrown::HashTable;
use std::hash::{BuildHasher, Hash};

/// The hasher of every table here. Keys are ids the control plane chose, never
/// attacker-inserted, so a fast hasher is safe; lookups of arbitrary keys cannot degrade a
/// built table.
pub type Hasher = foldhash::fast::RandomState;

/// An item with its own unique key.
pub trait Keyed {
    type Key: Hash + Eq + Copy;
    fn key(&self) -> Self::Key;
}

/// An item's position and its key's hash (32 bits of it).
#[derive(Clone, Copy, Debug)]
struct Slot {
    position: u32,
    hash: u32,
}

/// The table hash of a slot: its 32 bits, twice, so hashbrown's bucket bits (low) and tag
/// bits (high) both come from them.
fn spread(hash: u32) -> u64 {
    (u64::from(hash) << 32) | u64::from(hash)
}

/// Items by key, in a vector.
#[derive(Clone, Debug)]
pub struct Dense<T> {
    items: Vec<T>,
    index: HashTable<Slot>,
    hasher: Hasher,
}

impl<T> Default for Dense<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            index: HashTable::new(),
            hasher: Hasher::default(),
        }
    }
}

impl<T: Keyed> Dense<T> {
    /// Room for `capacity` items without growing.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            items: Vec::with_capacity(capacity),
            index: HashTable::with_capacity(capacity),
            hasher: Hasher::default(),
        }
    }

    fn hash(&self, key: &T::Key) -> u32 {
        self.hasher.hash_one(key) as u32
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Items the store holds without growing.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.items.capacity()
    }

    /// Position of the item with `key`.
    pub fn position(&self, key: &T::Key) -> Option<u32> {
        let (items, hash) = (&self.items, self.hash(key));
        self.index
            .find(spread(hash), |s| {
                s.hash == hash && items[s.position as usize].key() == *key
            })
            .map(|s| s.position)
    }

    pub fn get(&self, key: &T::Key) -> Option<&T> {
        self.position(key).map(|p| &self.items[p as usize])
    }

    /// The item at `position` (from [`Dense::position`] or a [`Positions`] of this table).
    pub fn at(&self, position: u32) -> &T {
        &self.items[position as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }

    /// Inserts `item`, replacing the item with the same key.
    pub fn insert(&mut self, item: T) {
        let key = item.key();
        let hash = self.hash(&key);
        let items = &mut self.items;
        match self.index.entry(
            spread(hash),
            |s| s.hash == hash && items[s.position as usize].key() == key,
            |s| spread(s.hash),
        ) {
            hashbrown::hash_table::Entry::Occupied(slot) => {
                items[slot.get().position as usize] = item
            }
            hashbrown::hash_table::Entry::Vacant(slot) => {
                let position = u32::try_from(items.len()).unwrap_or(u32::MAX);
                slot.insert(Slot { position, hash });
                items.push(item);
            }
        }
    }

    /// Removes the item with `key`; the last item takes its position.
    pub fn remove(&mut self, key: &T::Key) -> Option<T> {
        let hash = self.hash(key);
        let items = &self.items;
        let position = self
            .index
            .find_entry(spread(hash), |s| {
                s.hash == hash && items[s.position as usize].key() == *key
            })
            .ok()?
            .remove()
            .0
            .position;
        let last = u32::try_from(self.items.len() - 1).unwrap_or(u32::MAX);
        let removed = self.items.swap_remove(position as usize);
        if position != last {
            let moved = self.hash(&self.items[position as usize].key());
            if let Some(slot) = self.index.find_mut(spread(moved), |s| s.position == last) {
                slot.position = position;
            }
        }
        Some(removed)
    }

    /// Gives back spare capacity (a vector grown by doubling can be nearly half empty).
    pub fn shrink_to_fit(&mut self) {
        if self.items.capacity() > self.items.len() + self.items.len() / 8 {
            self.items.shrink_to_fit();
        }
    }
}

/// Positions in a [`Dense`] by another key that the items carry (e.g. triggers by number).
#[derive(Clone, Debug, Default)]
pub struct Positions {
    index: HashTable<u32>,
}

impl Positions {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            index: HashTable::with_capacity(capacity),
        }
    }

    /// Records the item at `position` under `key(item)` unless another item holds that key;
    /// says whether one did.
    pub fn claim<T: Keyed, K: Hash + Eq>(
        &mut self,
        dense: &Dense<T>,
        position: u32,
        key: impl Fn(&T) -> K,
    ) -> bool {
        let wanted = key(dense.at(position));
        let hash = dense.hasher.hash_one(&wanted);
        match self.index.entry(
            hash,
            |&p| key(dense.at(p)) == wanted,
            |&p| dense.hasher.hash_one(key(dense.at(p))),
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => true,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(position);
                false
            }
        }
    }

    /// Forgets `position` if it holds the slot of `key(item at position)`.
    pub fn forget<T: Keyed, K: Hash + Eq>(
        &mut self,
        dense: &Dense<T>,
        position: u32,
        key: impl Fn(&T) -> K,
    ) {
        let hash = dense.hasher.hash_one(key(dense.at(position)));
        if let Ok(slot) = self.index.find_entry(hash, |&p| p == position) {
            slot.remove();
        }
    }

    /// After [`Dense::remove`] moved the item at `from` (the last) to `to`, points its slot,
    /// if it has one, at `to`.
    pub fn moved<T: Keyed, K: Hash + Eq>(
        &mut self,
        dense: &Dense<T>,
        from: u32,
        to: u32,
        key: impl Fn(&T) -> K,
    ) {
        let hash = dense.hasher.hash_one(key(dense.at(to)));
        if let Some(slot) = self.index.find_mut(hash, |&p| p == from) {
            *slot = to;
        }
    }

    /// The item whose `key(item)` is `wanted`.
    pub fn get<'a, T: Keyed, K: Hash + Eq>(
        &self,
        dense: &'a Dense<T>,
        wanted: &K,
        key: impl Fn(&T) -> K,
    ) -> Option<&'a T> {
        self.index
            .find(dense.hasher.hash_one(wanted), |&p| {
                key(dense.at(p)) == *wanted
            })
            .map(|&p| dense.at(p))
    }

    pub fn positions(&self) -> impl Iterator<Item = u32> + '_ {
        self.index.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Item(u32, &'static str);

    impl Keyed for Item {
        type Key = u32;
        fn key(&self) -> u32 {
            self.0
        }
    }

    #[test]
    fn insert_replace_and_remove_keep_every_item_findable() {
        let mut d = Dense::default();
        for i in 0..1000 {
            d.insert(Item(i, "a"));
        }
        d.insert(Item(7, "b"));
        assert_eq!(d.len(), 1000);
        assert_eq!(d.get(&7), Some(&Item(7, "b")));
        for i in (0..1000).step_by(3) {
            assert_eq!(d.remove(&i).map(|item| item.0), Some(i));
        }
        assert_eq!(d.remove(&0), None);
        for i in 0..1000 {
            assert_eq!(d.get(&i).is_some(), i % 3 != 0, "item {i}");
        }
        d.shrink_to_fit();
        assert_eq!(d.iter().count(), 666);
    }

    #[test]
    fn positions_claim_once_per_secondary_key() {
        let mut d = Dense::default();
        d.insert(Item(1, "x"));
        d.insert(Item(2, "y"));
        d.insert(Item(3, "x"));
        let mut by_name = Positions::with_capacity(3);
        let taken: Vec<bool> = (0..3).map(|p| by_name.claim(&d, p, |i| i.1)).collect();
        assert_eq!(taken, [false, false, true]);
        assert_eq!(by_name.get(&d, &"y", |i| i.1), Some(&Item(2, "y")));
        assert_eq!(by_name.get(&d, &"x", |i| i.1), Some(&Item(1, "x")));
        assert_eq!(by_name.get(&d, &"z", |i| i.1), None);
    }
}
