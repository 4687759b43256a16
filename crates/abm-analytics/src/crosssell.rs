//! Cross-sell: which products customers hold together (pairs with support, confidence and
//! lift), and the accounts that hold one product of a pair without the other. A customer holds
//! a product when it has a won deal for it closed by the period's end.

use crate::perf::Period;
use abm_core::{AccountIdx, Deal, DealOutcome};
use serde::Serialize;
use std::collections::BTreeMap;

/// At most this many products (the most held) are analysed; a bit each.
pub const MAX_PRODUCTS: usize = 64;
/// Accounts listed per pair direction.
pub const CANDIDATES: usize = 10;

/// The products analysed, most held first.
#[derive(Debug, Clone, Default)]
pub struct Products {
    pub names: Vec<String>,
    index: BTreeMap<String, usize>,
    /// Products left out beyond [`MAX_PRODUCTS`].
    pub left_out: usize,
}

impl Products {
    /// The products of won deals closed by the period's end, the most frequent first (ties by
    /// name), at most [`MAX_PRODUCTS`].
    pub fn of<'a>(deals: impl Iterator<Item = &'a Deal>, p: &Period) -> Products {
        let mut count: BTreeMap<&str, u64> = BTreeMap::new();
        for d in deals {
            if let Some(name) = won_product(d, p) {
                *count.entry(name).or_default() += 1;
            }
        }
        let mut v: Vec<(&str, u64)> = count.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let left_out = v.len().saturating_sub(MAX_PRODUCTS);
        let names: Vec<String> = v
            .into_iter()
            .take(MAX_PRODUCTS)
            .map(|(n, _)| n.to_string())
            .collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        Products {
            names,
            index,
            left_out,
        }
    }

    /// The products an account holds, as bits.
    pub fn held(&self, deals: &[Deal], p: &Period) -> u64 {
        deals
            .iter()
            .filter_map(|d| won_product(d, p))
            .filter_map(|name| self.index.get(name))
            .fold(0u64, |m, i| m | (1u64 << i))
    }
}

fn won_product<'a>(d: &'a Deal, p: &Period) -> Option<&'a str> {
    (d.outcome == DealOutcome::Won && d.closed_at.is_some_and(|c| c <= p.to))
        .then_some(d.product.as_deref())
        .flatten()
}

/// One pair of products.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Pair {
    pub a: String,
    pub b: String,
    /// Customers holding both.
    pub both: u64,
    pub a_without_b: u64,
    pub b_without_a: u64,
    /// both ÷ customers holding any product.
    pub support: f64,
    /// both ÷ holders of a (the chance a holder of a also holds b).
    pub confidence_a_to_b: f64,
    pub confidence_b_to_a: f64,
    /// support ÷ (share holding a × share holding b); above 1: bought together more than chance.
    pub lift: f64,
    /// Best-scoring accounts holding a without b, and b without a.
    pub accounts_a_without_b: Vec<String>,
    pub accounts_b_without_a: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProductShare {
    pub product: String,
    pub holders: u64,
    pub share: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CrossSell {
    /// Customers holding at least one product.
    pub customers: u64,
    pub products: Vec<ProductShare>,
    /// Pairs held together by at least `min_both` customers, highest lift first.
    pub pairs: Vec<Pair>,
    pub notes: Vec<String>,
}

/// Cross-sell from each holding account's (products held, ICP score, account).
pub fn cross_sell(
    products: &Products,
    holders: &[(u64, f64, AccountIdx)],
    min_both: u64,
    account_id: &dyn Fn(AccountIdx) -> String,
) -> Option<CrossSell> {
    let n = products.names.len();
    if n == 0 {
        return None;
    }
    let customers = holders.iter().filter(|h| h.0 != 0).count() as u64;
    let mut held = vec![0u64; n];
    let mut both = vec![0u64; n * n];
    for (mask, _, _) in holders {
        let bits: Vec<usize> = (0..n).filter(|i| mask >> i & 1 == 1).collect();
        for &i in &bits {
            held[i] += 1;
            for &j in &bits {
                both[i * n + j] += 1;
            }
        }
    }
    let share = |k: u64| k as f64 / customers.max(1) as f64;
    // Best ICP score first, then account order.
    let mut by_score: Vec<&(u64, f64, AccountIdx)> = holders.iter().collect();
    by_score.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.2.cmp(&y.2)));
    let without = |i: usize, j: usize| -> Vec<String> {
        by_score
            .iter()
            .filter(|(m, _, _)| m >> i & 1 == 1 && m >> j & 1 == 0)
            .take(CANDIDATES)
            .map(|(_, _, a)| account_id(*a))
            .collect()
    };
    let mut pairs = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            let b = both[i * n + j];
            if b < min_both.max(1) {
                continue;
            }
            let lift = share(b) / (share(held[i]) * share(held[j]));
            pairs.push(Pair {
                a: products.names[i].clone(),
                b: products.names[j].clone(),
                both: b,
                a_without_b: held[i] - b,
                b_without_a: held[j] - b,
                support: share(b),
                confidence_a_to_b: b as f64 / held[i] as f64,
                confidence_b_to_a: b as f64 / held[j] as f64,
                lift,
                accounts_a_without_b: without(i, j),
                accounts_b_without_a: without(j, i),
            });
        }
    }
    pairs.sort_by(|x, y| {
        y.lift
            .total_cmp(&x.lift)
            .then(y.both.cmp(&x.both))
            .then(x.a.cmp(&y.a))
            .then(x.b.cmp(&y.b))
    });
    pairs.truncate(50);
    let mut notes = Vec::new();
    if products.left_out > 0 {
        notes.push(format!(
            "{} products beyond the {MAX_PRODUCTS} most held are left out",
            products.left_out
        ));
    }
    Some(CrossSell {
        customers,
        products: products
            .names
            .iter()
            .zip(&held)
            .map(|(p, h)| ProductShare {
                product: p.clone(),
                holders: *h,
                share: share(*h),
            })
            .collect(),
        pairs,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::tests::{deal, period};
    use DealOutcome::*;

    fn sold(product: &str, out: DealOutcome, closed: &str) -> Deal {
        Deal {
            product: Some(product.into()),
            history: Vec::new(),
            ..deal(out, "2026-01-01", Some(closed), Some(1.0))
        }
    }

    #[test]
    fn products_held_are_won_by_the_end() {
        let p = period();
        let deals = [
            sold("crm", Won, "2026-02-01"),
            sold("crm", Won, "2026-03-01"),
            sold("bi", Won, "2026-05-01"), // after the period
            sold("ads", Lost, "2026-02-01"),
            sold("api", Won, "2025-06-01"),
        ];
        let products = Products::of(deals.iter(), &p);
        assert_eq!(products.names, ["crm", "api"]);
        assert_eq!(products.held(&deals, &p), 0b11);
        assert_eq!(products.held(&deals[2..4], &p), 0);
    }

    #[test]
    fn pairs_support_confidence_lift_and_candidates() {
        let p = period();
        let all = [
            sold("crm", Won, "2026-02-01"),
            sold("bi", Won, "2026-02-01"),
        ];
        let products = Products::of(all.iter(), &p);
        let (crm, bi) = (products.held(&all[..1], &p), products.held(&all[1..], &p));
        // 4 customers: 2 hold both, 1 crm only (score 90), 1 bi only (score 10).
        let holders = [
            (crm | bi, 50.0, 0),
            (crm | bi, 60.0, 1),
            (crm, 90.0, 2),
            (bi, 10.0, 3),
        ];
        let c = cross_sell(&products, &holders, 1, &|i| format!("a{i}")).unwrap();
        assert_eq!(c.customers, 4);
        let pair = &c.pairs[0];
        assert_eq!((pair.both, pair.a_without_b, pair.b_without_a), (2, 1, 1));
        assert_eq!(pair.support, 0.5);
        assert_eq!(pair.confidence_a_to_b, 2.0 / 3.0);
        // 0.5 / (0.75 × 0.75)
        assert!((pair.lift - 0.5 / 0.5625).abs() < 1e-12);
        let (a_only, b_only) = if pair.a == "crm" {
            (&pair.accounts_a_without_b, &pair.accounts_b_without_a)
        } else {
            (&pair.accounts_b_without_a, &pair.accounts_a_without_b)
        };
        assert_eq!(a_only, &vec!["a2".to_string()]);
        assert_eq!(b_only, &vec!["a3".to_string()]);
        // A pair below the minimum is left out; no products: no cross-sell.
        assert!(cross_sell(&products, &holders, 3, &|i| i.to_string())
            .unwrap()
            .pairs
            .is_empty());
        assert!(cross_sell(&Products::default(), &[], 1, &|i| i.to_string()).is_none());
    }
}
