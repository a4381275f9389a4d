//! Sorting by key at scale. Pure: items in, the same items in key order out.
//!
//! A gateway's keys share a long prefix (`agent:main:telegram:dm:` and a number), so a plain
//! sort of a million of them spends most of its time in `memcmp` over those shared bytes, each
//! comparison following two pointers to keys scattered over the heap. Here the prefix every
//! key shares is found once, the eight bytes after it are read into an integer beside each
//! item's index, and the sort compares those integers, reading the whole keys only where the
//! eight bytes are equal. The order is exactly byte order (`str::cmp`): a key shorter than the
//! eight bytes is padded with zeros, which sorts it before every longer key it begins.

/// Below this many items a plain sort is as fast.
const PLAIN_SORT_MAX: usize = 512;

/// `items` in ascending order of `key_of(item)` (byte order). Keys are expected to be distinct;
/// equal keys come out in no particular order, as with `sort_unstable`.
pub(crate) fn sorted_by_key<T: Copy>(mut items: Vec<T>, key_of: impl Fn(&T) -> &str) -> Vec<T> {
    if items.len() <= PLAIN_SORT_MAX {
        items.sort_unstable_by(|a, b| key_of(a).cmp(key_of(b)));
        return items;
    }
    let shared = shared_prefix(items.iter().map(|item| key_of(item).as_bytes()));
    let mut order: Vec<(u64, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (eight_after(key_of(item).as_bytes(), shared), i))
        .collect();
    order.sort_unstable_by(|&(a, i), &(b, j)| {
        a.cmp(&b)
            .then_with(|| key_of(&items[i]).cmp(key_of(&items[j])))
    });
    let sorted: Vec<T> = order.iter().map(|&(_, i)| items[i]).collect();
    debug_assert!(
        sorted.windows(2).all(|w| key_of(&w[0]) <= key_of(&w[1])),
        "the keys come out in byte order"
    );
    sorted
}

/// The length of the prefix all `keys` share (0 for none).
fn shared_prefix<'a>(mut keys: impl Iterator<Item = &'a [u8]>) -> usize {
    let Some(first) = keys.next() else {
        return 0;
    };
    let mut shared = first.len();
    for key in keys {
        shared = first[..shared]
            .iter()
            .zip(key)
            .take_while(|(a, b)| a == b)
            .count();
        if shared == 0 {
            break;
        }
    }
    shared
}

/// The eight bytes of `key` from `at`, big-endian (so integer order is byte order), padded with
/// zeros past the key's end.
fn eight_after(key: &[u8], at: usize) -> u64 {
    let mut eight = [0u8; 8];
    let rest = key.get(at..).unwrap_or_default();
    let n = rest.len().min(8);
    eight[..n].copy_from_slice(&rest[..n]);
    u64::from_be_bytes(eight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plain(mut keys: Vec<String>) -> Vec<String> {
        keys.sort_unstable();
        keys
    }

    fn fast(keys: &[String]) -> Vec<String> {
        let refs: Vec<&String> = keys.iter().collect();
        sorted_by_key(refs, |k| k.as_str())
            .into_iter()
            .cloned()
            .collect()
    }

    #[test]
    fn a_gateways_keys_come_out_in_byte_order() {
        // Past the plain sort's limit, with a long shared prefix, keys of different lengths
        // (9 sorts after 10 in byte order), and keys that end inside the eight bytes.
        let mut keys: Vec<String> = (0..5_000)
            .rev()
            .map(|n| format!("agent:main:telegram:dm:{n}"))
            .collect();
        keys.push("agent:main:telegram:dm:".to_string());
        keys.push("agent:main:telegram:dm:1234567890123".to_string());
        keys.push("agent:main:telegram:dm:12345678901234".to_string());
        keys.push("agent:main:telegram:dm:1\u{0}".to_string());
        assert!(keys.len() > PLAIN_SORT_MAX);
        assert_eq!(fast(&keys), plain(keys));
    }

    #[test]
    fn the_shared_prefix_is_found() {
        let keys: [&[u8]; 3] = [b"abcd", b"abce", b"abc"];
        assert_eq!(shared_prefix(keys.into_iter()), 3);
        assert_eq!(shared_prefix([b"x" as &[u8], b"y"].into_iter()), 0);
        assert_eq!(shared_prefix(std::iter::empty()), 0);
        assert_eq!(
            eight_after(b"ab", 1),
            u64::from_be_bytes(*b"b\0\0\0\0\0\0\0")
        );
        assert_eq!(eight_after(b"ab", 5), 0);
    }

    proptest! {
        #[test]
        fn any_keys_come_out_as_a_plain_sort_gives_them(
            prefix in "[a-c:]{0,30}",
            tails in proptest::collection::hash_set("[\\x00-\\x7f\u{e9}]{0,12}", 600..900),
        ) {
            let keys: Vec<String> = tails.into_iter().map(|t| format!("{prefix}{t}")).collect();
            prop_assert_eq!(fast(&keys), plain(keys));
        }
    }
}
