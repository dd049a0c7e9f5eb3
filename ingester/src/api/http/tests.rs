use super::*;

#[test]
fn base_paths() {
    assert_eq!(normalize_base(""), "");
    assert_eq!(normalize_base(" / "), "");
    assert_eq!(normalize_base("telemetry/"), "/telemetry");
    assert_eq!(normalize_base("/a/b//"), "/a/b");
}

#[test]
fn injection_is_escaped() {
    let page = render_index(
        "<html><head><title>x</title></head><body></body></html>",
        "/</script><script>alert(1)</script>",
    );
    assert!(!page.contains("</script><script>alert"));
    assert!(page.contains("window.TELEMETRY_BASE = \"/\\u003c/script\\u003e"));
    let i = page.find("<script>window.TELEMETRY_BASE").unwrap();
    assert!(i < page.find("</head>").unwrap());
}

#[test]
fn origins() {
    assert!(same_origin(None, Some("127.0.0.1:8888"), None));
    assert!(same_origin(
        Some("http://127.0.0.1:8888"),
        Some("127.0.0.1:8888"),
        None
    ));
    assert!(!same_origin(
        Some("http://evil.example"),
        Some("127.0.0.1:8888"),
        None
    ));
    assert!(same_origin(
        Some("https://ops.example.com"),
        Some("127.0.0.1:8888"),
        Some("ops.example.com")
    ));
    assert!(!same_origin(Some("null"), Some("127.0.0.1:8888"), None));
}
