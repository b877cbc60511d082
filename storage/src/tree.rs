//! A persistent ordered map with order statistics: the index's current values.
//!
//! It is a B+tree whose nodes are shared through `Arc`. Cloning a map is O(1) and gives an
//! immutable snapshot: a later write copies only the nodes on its path that a snapshot still
//! shares (`Arc::make_mut`), and writes nothing in place while a snapshot can see it. So a reader
//! takes a snapshot under the index lock in constant time and walks it afterwards without holding
//! anything, however large the collection or the page.
//!
//! Every child pointer carries the number of entries below it, so [`Map::rank`] (how many keys
//! sort before a key) is O(log n): a list page can say exactly how many keys remain after it
//! without walking them. Point reads, writes and seeks are O(log n); iterating from a seek is
//! O(1) per entry.

use std::borrow::Borrow;
use std::ops::Bound;
use std::sync::Arc;

/// Most entries in a leaf, and most children of an inner node.
const MAX: usize = 64;
/// Fewer than this many and a node is merged with a neighbour.
const MIN: usize = MAX / 4;

#[derive(Clone, Debug)]
enum Node<K, V> {
    Leaf(Vec<(K, V)>),
    Inner(Vec<Child<K, V>>),
}

#[derive(Clone, Debug)]
struct Child<K, V> {
    /// The smallest key below this child.
    first: K,
    /// How many entries are below this child.
    len: usize,
    node: Arc<Node<K, V>>,
}

impl<K: Clone + Ord, V: Clone> Node<K, V> {
    /// Entries (leaf) or children (inner node) held directly.
    fn width(&self) -> usize {
        match self {
            Node::Leaf(entries) => entries.len(),
            Node::Inner(children) => children.len(),
        }
    }

    /// Entries below this node.
    fn len(&self) -> usize {
        match self {
            Node::Leaf(entries) => entries.len(),
            Node::Inner(children) => children.iter().map(|c| c.len).sum(),
        }
    }

    fn first(&self) -> Option<&K> {
        match self {
            Node::Leaf(entries) => entries.first().map(|(k, _)| k),
            Node::Inner(children) => children.first().map(|c| &c.first),
        }
    }

    /// Splits off the upper half when the node is over full.
    fn split_if_full(&mut self) -> Option<Node<K, V>> {
        if self.width() <= MAX {
            return None;
        }
        let half = self.width() / 2;
        Some(match self {
            Node::Leaf(entries) => Node::Leaf(entries.split_off(half)),
            Node::Inner(children) => Node::Inner(children.split_off(half)),
        })
    }

    fn into_child(node: Node<K, V>) -> Option<Child<K, V>> {
        Some(Child {
            first: node.first()?.clone(),
            len: node.len(),
            node: Arc::new(node),
        })
    }
}

/// The index of the child whose subtree would hold `key`: the last one whose first key is not
/// greater than it (the first child for keys below every child).
fn child_for<K: Borrow<Q>, V, Q: Ord + ?Sized>(children: &[Child<K, V>], key: &Q) -> usize {
    children
        .partition_point(|c| c.first.borrow() <= key)
        .saturating_sub(1)
}

/// A persistent ordered map from `K` to `V` that counts its entries per subtree.
#[derive(Clone, Debug)]
pub struct Map<K, V> {
    root: Option<Arc<Node<K, V>>>,
    len: usize,
}

impl<K, V> Default for Map<K, V> {
    fn default() -> Self {
        Map { root: None, len: 0 }
    }
}

impl<K: Clone + Ord, V: Clone> Map<K, V> {
    /// An empty map.
    pub fn new() -> Map<K, V> {
        Map::default()
    }

    /// Builds a map from entries already sorted by key with no duplicates, in O(n).
    pub fn from_sorted(entries: impl IntoIterator<Item = (K, V)>) -> Map<K, V> {
        // Leaves three quarters full leave room for inserts before the first splits.
        let fill = MAX * 3 / 4;
        let mut level: Vec<Child<K, V>> = Vec::new();
        let mut leaf = Vec::with_capacity(fill);
        let mut len = 0;
        for entry in entries {
            leaf.push(entry);
            len += 1;
            if leaf.len() == fill {
                level.extend(Node::into_child(Node::Leaf(std::mem::replace(
                    &mut leaf,
                    Vec::with_capacity(fill),
                ))));
            }
        }
        level.extend(Node::into_child(Node::Leaf(leaf)));
        while level.len() > 1 {
            let mut upper = Vec::with_capacity(level.len() / fill + 1);
            let mut rest = level.into_iter().peekable();
            while rest.peek().is_some() {
                let group: Vec<_> = rest.by_ref().take(fill).collect();
                upper.extend(Node::into_child(Node::Inner(group)));
            }
            level = upper;
        }
        Map {
            root: level.pop().map(|c| c.node),
            len,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry of a key.
    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut node = self.root.as_deref()?;
        loop {
            match node {
                Node::Leaf(entries) => {
                    let i = entries
                        .binary_search_by(|(k, _)| k.borrow().cmp(key))
                        .ok()?;
                    return entries.get(i).map(|(k, v)| (k, v));
                }
                Node::Inner(children) => node = &children.get(child_for(children, key))?.node,
            }
        }
    }

    /// Sets the value of a key; returns the value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let Some(root) = self.root.as_mut() else {
            self.root = Some(Arc::new(Node::Leaf(vec![(key, value)])));
            self.len = 1;
            return None;
        };
        let root_node = Arc::make_mut(root);
        let old = insert(root_node, key, value);
        if let Some(upper) = root_node.split_if_full() {
            let lower = std::mem::replace(root_node, Node::Inner(Vec::new()));
            let children = [lower, upper]
                .into_iter()
                .filter_map(Node::into_child)
                .collect();
            *root_node = Node::Inner(children);
        }
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes a key; returns its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let root = self.root.as_mut()?;
        let removed = remove(Arc::make_mut(root), key)?;
        self.len -= 1;
        // A root with one child hands the root over to it; an empty leaf root empties the map.
        while let Some(root) = self.root.as_ref() {
            match &**root {
                Node::Inner(children) if children.len() == 1 => {
                    self.root = children.first().map(|c| c.node.clone());
                }
                Node::Leaf(entries) if entries.is_empty() => self.root = None,
                Node::Inner(children) if children.is_empty() => self.root = None,
                _ => break,
            }
        }
        Some(removed)
    }

    /// How many keys sort strictly before `key` (whether or not `key` is present).
    pub fn rank<Q>(&self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut rank = 0;
        let Some(mut node) = self.root.as_deref() else {
            return 0;
        };
        loop {
            match node {
                Node::Leaf(entries) => {
                    return rank + entries.partition_point(|(k, _)| k.borrow() < key);
                }
                Node::Inner(children) => {
                    let i = child_for(children, key);
                    rank += children[..i].iter().map(|c| c.len).sum::<usize>();
                    match children.get(i) {
                        Some(c) => node = &c.node,
                        None => return rank,
                    }
                }
            }
        }
    }

    /// How many keys lie within bounds, in O(log n).
    pub fn count_range<Q>(&self, lower: Bound<&Q>, upper: Bound<&Q>) -> usize
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let position = |bound: Bound<&Q>, below: bool| match bound {
            Bound::Unbounded if below => 0,
            Bound::Unbounded => self.len,
            // Keys before an included lower bound, or up to an included upper bound.
            Bound::Included(k) if below => self.rank(k),
            Bound::Included(k) => self.rank(k) + usize::from(self.get_key_value(k).is_some()),
            Bound::Excluded(k) if below => {
                self.rank(k) + usize::from(self.get_key_value(k).is_some())
            }
            Bound::Excluded(k) => self.rank(k),
        };
        position(upper, false).saturating_sub(position(lower, true))
    }

    /// The entries from a lower bound on, in key order.
    pub fn range_from<Q>(&self, lower: Bound<&Q>) -> Iter<'_, K, V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let mut stack = Vec::new();
        let Some(mut node) = self.root.as_deref() else {
            return Iter { stack };
        };
        loop {
            match node {
                Node::Leaf(entries) => {
                    let at = match lower {
                        Bound::Unbounded => 0,
                        Bound::Included(k) => entries.partition_point(|(e, _)| e.borrow() < k),
                        Bound::Excluded(k) => entries.partition_point(|(e, _)| e.borrow() <= k),
                    };
                    stack.push((node, at));
                    return Iter { stack };
                }
                Node::Inner(children) => {
                    let i = match lower {
                        Bound::Unbounded => 0,
                        Bound::Included(k) | Bound::Excluded(k) => child_for(children, k),
                    };
                    stack.push((node, i + 1));
                    match children.get(i) {
                        Some(c) => node = &c.node,
                        None => return Iter { stack },
                    }
                }
            }
        }
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        self.range_from(Bound::Unbounded)
    }
}

fn insert<K: Clone + Ord, V: Clone>(node: &mut Node<K, V>, key: K, value: V) -> Option<V> {
    match node {
        Node::Leaf(entries) => match entries.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) => Some(std::mem::replace(&mut entries[i].1, value)),
            Err(i) => {
                entries.insert(i, (key, value));
                None
            }
        },
        Node::Inner(children) => {
            let i = child_for(children, &key);
            let child = &mut children[i];
            if key < child.first {
                child.first = key.clone();
            }
            let child_node = Arc::make_mut(&mut child.node);
            let old = insert(child_node, key, value);
            if old.is_none() {
                child.len += 1;
            }
            if let Some(upper) = child_node.split_if_full() {
                child.len = child_node.len();
                if let Some(upper) = Node::into_child(upper) {
                    children.insert(i + 1, upper);
                }
            }
            old
        }
    }
}

fn remove<K, V, Q>(node: &mut Node<K, V>, key: &Q) -> Option<V>
where
    K: Borrow<Q> + Clone + Ord,
    V: Clone,
    Q: Ord + ?Sized,
{
    match node {
        Node::Leaf(entries) => {
            let i = entries
                .binary_search_by(|(k, _)| k.borrow().cmp(key))
                .ok()?;
            Some(entries.remove(i).1)
        }
        Node::Inner(children) => {
            let i = child_for(children, key);
            let child = children.get_mut(i)?;
            let child_node = Arc::make_mut(&mut child.node);
            let removed = remove(child_node, key)?;
            child.len -= 1;
            if let Some(first) = child_node.first() {
                child.first = first.clone();
            }
            if child_node.width() < MIN {
                rebalance(children, i);
            }
            Some(removed)
        }
    }
}

/// Merges an under-full child with a neighbour, splitting the result again when it is over
/// full. Both are at the same depth (every leaf of a B+tree is), so they are of the same kind.
fn rebalance<K: Clone + Ord, V: Clone>(children: &mut Vec<Child<K, V>>, i: usize) {
    if children.len() < 2 {
        return;
    }
    let (left, right) = if i + 1 < children.len() {
        (i, i + 1)
    } else {
        (i - 1, i)
    };
    let taken = children.remove(right);
    let taken = Arc::try_unwrap(taken.node).unwrap_or_else(|shared| (*shared).clone());
    let merged = Arc::make_mut(&mut children[left].node);
    match (merged, taken) {
        (Node::Leaf(into), Node::Leaf(from)) => into.extend(from),
        (Node::Inner(into), Node::Inner(from)) => into.extend(from),
        (_, taken) => {
            // Not reachable in a B+tree; keep the node rather than lose entries.
            if let Some(c) = Node::into_child(taken) {
                children.insert(right, c);
            }
            return;
        }
    }
    let child = &mut children[left];
    let merged = Arc::make_mut(&mut child.node);
    let upper = merged.split_if_full();
    child.len = merged.len();
    if let Some(first) = merged.first() {
        child.first = first.clone();
    }
    if let Some(upper) = upper.and_then(Node::into_child) {
        children.insert(left + 1, upper);
    }
}

/// An iterator over a map's entries in key order.
pub struct Iter<'a, K, V> {
    /// The path to the next entry: each node with the index of what to visit next in it.
    stack: Vec<(&'a Node<K, V>, usize)>,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<(&'a K, &'a V)> {
        loop {
            let (node, at) = self.stack.last_mut()?;
            let node: &'a Node<K, V> = node;
            match node {
                Node::Leaf(entries) => match entries.get(*at) {
                    Some((k, v)) => {
                        *at += 1;
                        return Some((k, v));
                    }
                    None => {
                        self.stack.pop();
                    }
                },
                Node::Inner(children) => match children.get(*at) {
                    Some(c) => {
                        *at += 1;
                        self.stack.push((&c.node, 0));
                    }
                    None => {
                        self.stack.pop();
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    fn check<K: Clone + Ord + std::fmt::Debug, V: Clone + PartialEq + std::fmt::Debug>(
        map: &Map<K, V>,
        model: &BTreeMap<K, V>,
    ) {
        assert_eq!(map.len(), model.len());
        let got: Vec<_> = map.iter().collect();
        let want: Vec<_> = model.iter().collect();
        assert_eq!(got, want);
        if let Some(root) = &map.root {
            check_node(root, true);
        }
    }

    /// Counts and first keys are right, leaves are all at one depth. Returns the depth.
    fn check_node<K: Clone + Ord + std::fmt::Debug, V: Clone>(
        node: &Node<K, V>,
        root: bool,
    ) -> usize {
        assert!(node.width() <= MAX, "node over full");
        if !root {
            assert!(node.width() > 0, "empty node");
        }
        match node {
            Node::Leaf(entries) => {
                assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
                1
            }
            Node::Inner(children) => {
                let depths: Vec<usize> = children
                    .iter()
                    .map(|c| {
                        assert_eq!(c.len, c.node.len());
                        assert_eq!(Some(&c.first), c.node.first());
                        check_node(&c.node, false)
                    })
                    .collect();
                assert!(depths.windows(2).all(|w| w[0] == w[1]), "uneven depth");
                depths[0] + 1
            }
        }
    }

    /// Random inserts and removes against `BTreeMap`, with snapshots that must not change.
    #[test]
    fn matches_a_btreemap_and_snapshots_stay_put() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut map: Map<u32, u32> = Map::new();
        let mut model = BTreeMap::new();
        let mut snapshots: Vec<(Map<u32, u32>, BTreeMap<u32, u32>)> = Vec::new();
        for step in 0..40_000 {
            let key = rng.random_range(0..5_000);
            if rng.random_bool(0.6) {
                let value = rng.random();
                assert_eq!(map.insert(key, value), model.insert(key, value));
            } else {
                assert_eq!(map.remove(&key), model.remove(&key));
            }
            if step % 4_000 == 0 {
                snapshots.push((map.clone(), model.clone()));
            }
            if step % 997 == 0 {
                check(&map, &model);
            }
        }
        check(&map, &model);
        for (snapshot, was) in &snapshots {
            check(snapshot, was);
        }
        // Drain it completely.
        let keys: Vec<u32> = model.keys().copied().collect();
        for k in keys {
            assert_eq!(map.remove(&k), model.remove(&k));
        }
        check(&map, &model);
        assert!(map.root.is_none());
    }

    #[test]
    fn rank_count_and_seek() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut map = Map::new();
        let mut model = BTreeMap::new();
        for _ in 0..20_000 {
            let k: u32 = rng.random_range(0..100_000);
            map.insert(k, ());
            model.insert(k, ());
        }
        for _ in 0..2_000 {
            let k: u32 = rng.random_range(0..100_001);
            assert_eq!(map.rank(&k), model.range(..k).count());
            let hi = k + rng.random_range(0..5_000);
            assert_eq!(
                map.count_range(Bound::Excluded(&k), Bound::Excluded(&hi)),
                model
                    .range((Bound::Excluded(k), Bound::Excluded(hi)))
                    .count()
            );
            assert_eq!(
                map.count_range(Bound::Included(&k), Bound::Included(&hi)),
                model.range(k..=hi).count()
            );
            let got: Vec<_> = map
                .range_from(Bound::Excluded(&k))
                .take(5)
                .map(|(k, _)| *k)
                .collect();
            let want: Vec<_> = model
                .range((Bound::Excluded(k), Bound::Unbounded))
                .take(5)
                .map(|(k, _)| *k)
                .collect();
            assert_eq!(got, want);
        }
        assert_eq!(
            map.count_range::<u32>(Bound::Unbounded, Bound::Unbounded),
            model.len()
        );
    }

    #[test]
    fn bulk_load_equals_inserts() {
        for n in [0usize, 1, 47, 48, 49, 3_000, 100_000] {
            let map = Map::from_sorted((0..n as u64).map(|i| (i, i * 2)));
            let model: BTreeMap<u64, u64> = (0..n as u64).map(|i| (i, i * 2)).collect();
            check(&map, &model);
            // And it keeps working as a normal map.
            let mut map = map;
            let mut model = model;
            for i in (0..n as u64).step_by(3) {
                assert_eq!(map.remove(&i), model.remove(&i));
            }
            map.insert(u64::MAX, 1);
            model.insert(u64::MAX, 1);
            check(&map, &model);
        }
    }

    #[test]
    fn string_keys_borrow_as_str() {
        let mut map: Map<Arc<str>, u8> = Map::new();
        for k in ["apps/b/x", "apps/a/y", "nsres/z"] {
            map.insert(Arc::from(k), 1);
        }
        assert!(map.get_key_value("apps/a/y").is_some());
        assert_eq!(
            map.count_range(Bound::Included("apps/"), Bound::Excluded("apps0")),
            2
        );
        assert_eq!(map.rank("apps/b/"), 1);
    }
}
