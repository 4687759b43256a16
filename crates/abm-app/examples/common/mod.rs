//! What the in-process benchmarks share.

use abm_app::App;

/// `n` account ids spread evenly over the store (every (total / n)-th account of the list, read
/// by keyset pages); all of them when it holds fewer.
pub fn spread_ids(app: &App, n: usize) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let total = app.summary().map_err(|e| e.to_string())?.accounts.max(1) as usize;
    let step = (total / n.max(1)).max(1);
    let mut ids = Vec::with_capacity(n);
    let mut filter = abm_app::views::AccountFilter {
        limit: 1000,
        ..Default::default()
    };
    let mut seen = 0usize;
    'pages: loop {
        let page = app.list_accounts(&filter)?;
        for item in &page.items {
            if seen.is_multiple_of(step) {
                ids.push(item.account_id.clone());
                if ids.len() == n {
                    break 'pages;
                }
            }
            seen += 1;
        }
        match page.next_cursor {
            Some(c) => filter.cursor = Some(abm_app::views::Cursor::parse(&c).ok_or("cursor")?),
            None => break,
        }
    }
    Ok(ids)
}
