//! Keyset pages: a listing reads one row more than its limit, so it knows whether another page
//! follows without counting.

/// Rows to read for a page of `limit`.
pub(crate) fn rows_to_read(limit: u32) -> i64 {
    i64::from(limit) + 1
}

/// Cuts `items` (read with [`rows_to_read`]) to `limit`; the key of the last item kept when
/// another page follows, else `None`.
pub(crate) fn split<T, K>(
    mut items: Vec<T>,
    limit: u32,
    key: impl FnOnce(&T) -> K,
) -> (Vec<T>, Option<K>) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if items.len() <= limit {
        return (items, None);
    }
    items.truncate(limit);
    let next = items.last().map(key);
    (items, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_read_keeps_the_limit_and_points_at_its_last_item() {
        let rows = rows_to_read(3) as usize;
        let (page, next) = split((1..=rows).collect::<Vec<_>>(), 3, |n| *n);
        assert_eq!((page, next), (vec![1, 2, 3], Some(3)));
    }

    #[test]
    fn a_short_read_is_the_last_page() {
        assert_eq!(split(vec![1, 2, 3], 3, |n| *n), (vec![1, 2, 3], None));
        assert_eq!(split(Vec::<u8>::new(), 3, |n| *n), (vec![], None));
    }
}
