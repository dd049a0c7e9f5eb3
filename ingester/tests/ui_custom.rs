//! The Custom tab (the applications' own metrics) in real headless
//! Chromium against the real `serve`, fed over its real socket with
//! `wire::app`'s encoder: the tab lists every name with its summed value
//! and percentiles, and the group filter narrows it.

mod ui_support;

use ui_support::{app_datagram, bin, started, Browser, Serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_tab_shows_the_names_and_filters_by_group() {
    let serve = Serve::start(bin(), &[]);
    // pid 101 in g1, pid 102 in g2 (group g<pid % 4>).
    let all = vec![
        started(101, 1),
        started(102, 1),
        app_datagram(101, 2, 10.0, 3.0, &[0.002, 0.1]),
        app_datagram(102, 2, 7.0, 1.0, &[0.02]),
    ];
    serve.send_all(&all);
    serve.wait_received(all.len());

    let b = Browser::start(1400, 900).await;
    b.client.goto(&serve.page_url()).await.expect("open page");
    b.js("document.querySelector('.tab-btn[data-tab=custom]').click(); return true;")
        .await;
    let rows = "return [...document.querySelectorAll('#custom-table tbody tr')]\
                .map(r => [...r.cells].slice(0, 3).map(c => c.textContent).join('|')).join('\\n');";
    b.wait_true(
        "return document.querySelectorAll('#custom-table tbody tr').length === 3;",
        "three names in the Custom tab",
    )
    .await;
    assert_eq!(
        b.js(rows).await,
        "latency.{0}|distribution|3\norders|counter|17\nqueue.depth|gauge|4"
    );
    let p95 = b
        .js("return document.querySelector('#custom-table tbody tr').cells[5].textContent;")
        .await;
    assert!(p95.as_str().is_some_and(|s| s.ends_with("ms")), "{p95}");
    b.screenshot("custom").await;

    // Only g2.
    b.wait_true(
        "return document.querySelectorAll('#custom-group option').length === 3;",
        "the groups offered",
    )
    .await;
    b.js("const s = document.querySelector('#custom-group'); \
          s.value = JSON.stringify(['web1', 'g2']); \
          s.dispatchEvent(new Event('change')); return true;")
        .await;
    b.wait_true(
        "return [...document.querySelectorAll('#custom-table tbody tr')]\
         .some(r => r.dataset.name === 'orders' && r.cells[2].textContent === '7');",
        "g2's orders alone",
    )
    .await;
    assert_eq!(
        b.js(rows).await,
        "latency.{0}|distribution|1\norders|counter|7\nqueue.depth|gauge|1"
    );
    assert_eq!(b.errors().await, Vec::<String>::new());
    b.close().await;
}
