#[test]
fn warm() { let _ = whatsapp_rust::bot::Bot::builder(); }
