//! Preparing batch writes for single-statement upserts.
//!
//! PostgreSQL refuses an `INSERT … ON CONFLICT DO UPDATE` that touches the same row
//! twice, so a batch repeating a key is first collapsed the way applying it one item
//! at a time would collapse it: the last write wins.

use std::collections::HashMap;
use std::hash::Hash;

/// The items of `items` whose key does not occur again later, in their original order.
pub(super) fn last_write_wins<'a, T, K: Hash + Eq>(
    items: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> Vec<&'a T> {
    let mut last_index = HashMap::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        last_index.insert(key(item), index);
    }
    items
        .iter()
        .enumerate()
        .filter(|(index, item)| last_index.get(&key(item)) == Some(index))
        .map(|(_, item)| item)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::last_write_wins;

    #[test]
    fn keeps_the_last_item_per_key_in_order() {
        let items = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)];
        let kept: Vec<_> = last_write_wins(&items, |item| item.0)
            .into_iter()
            .copied()
            .collect();
        assert_eq!(kept, vec![("a", 3), ("c", 4), ("b", 5)]);
    }
}
