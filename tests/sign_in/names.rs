//! The name Apple sends once (the callback's `user` field, on first
//! consent only): remembered per user, given to every later session, and
//! forgotten with the user.

use super::common::{self, Browser, Nav, Person, Stack};

/// The `X-Auth-Request-Name` the upstream got for `b`'s request.
async fn name_upstream(b: &mut Browser, stack: &Stack) -> Option<String> {
    let echo = b.get(&stack.at("/"), Nav::Api).await.json();
    super::header(&echo, "x-auth-request-name").map(str::to_string)
}

/// Whether a sign-in's callback form carried Apple's `user` field.
fn sent_user(fields: &[(String, String)]) -> bool {
    fields.iter().any(|(k, _)| k == "user")
}

/// A sign-in as `person`, the callback posted with `user` set to `user`
/// (the unsigned field Apple's page would carry on a first consent).
async fn sign_in_with_user(stack: &Stack, b: &mut Browser, person: &Person, user: &str) {
    let mut at = b
        .through_apple(&stack.at("/oauth2/start?rd=/"), person)
        .await;
    at.fields.retain(|(k, _)| k != "user");
    at.fields.push(("user".into(), user.into()));
    let page = b.post_back(&at).await;
    assert_eq!(page.status, 303, "{}", page.body);
}

/// The first sign-in's name (first consent, `user` sent) reaches the
/// upstream on a later sign-in that comes without it, in a new browser
/// after signing out.
#[tokio::test]
async fn the_first_consents_name_reaches_later_sessions() {
    let stack = Stack::start();
    let mut first = Browser::new();
    let steps = stack.sign_in_steps(&mut first, "jane@example.com").await;
    assert!(sent_user(&steps.fields), "first consent sends the name");
    assert_eq!(
        name_upstream(&mut first, &stack).await.as_deref(),
        Some("Jane Appleseed")
    );
    first
        .get(&stack.at("/oauth2/sign_out"), Nav::TopLevel)
        .await;

    let mut later = Browser::new();
    let mut person = Person::new("jane@example.com");
    person.first_name = "Typed".into();
    let steps = later
        .sign_in_steps(&stack.at("/oauth2/start?rd=/"), &person)
        .await;
    assert!(!sent_user(&steps.fields), "no name after the first consent");
    assert_eq!(
        name_upstream(&mut later, &stack).await.as_deref(),
        Some("Jane Appleseed"),
        "the remembered name"
    );
    let mut john = Person::new("john@example.com");
    (john.first_name, john.last_name) = ("John".into(), "Smith".into());
    let start = stack.at("/oauth2/start?rd=/");
    Browser::new().sign_in(&start, &john).await;
    john.first_name = "Typed".into();
    let mut john_later = Browser::new();
    john_later.sign_in(&start, &john).await;
    assert_eq!(
        name_upstream(&mut john_later, &stack).await.as_deref(),
        Some("John Smith"),
        "each user's own name"
    );
    assert_eq!(
        name_upstream(&mut later, &stack).await.as_deref(),
        Some("Jane Appleseed")
    );
}

/// A new `user` field replaces the remembered name, for that session and
/// the ones after it; one that carries no name keeps the old.
#[tokio::test]
async fn a_new_user_field_replaces_the_name() {
    let stack = Stack::start();
    let mut b = Browser::new();
    stack.sign_in(&mut b, "jane@example.com").await;
    let jane = Person::new("jane@example.com");
    let renamed = r#"{"name":{"firstName":"Janet","lastName":"Doe"}}"#;
    sign_in_with_user(&stack, &mut b, &jane, renamed).await;
    assert_eq!(
        name_upstream(&mut b, &stack).await.as_deref(),
        Some("Janet Doe")
    );
    sign_in_with_user(&stack, &mut b, &jane, r#"{"email":"x@example.com"}"#).await;
    assert_eq!(
        name_upstream(&mut b, &stack).await.as_deref(),
        Some("Janet Doe"),
        "a user field without a name changes nothing"
    );
    let mut later = Browser::new();
    stack.sign_in(&mut later, "jane@example.com").await;
    assert_eq!(
        name_upstream(&mut later, &stack).await.as_deref(),
        Some("Janet Doe")
    );
}

/// `consent-revoked` and `account-delete` forget the name: the next
/// sign-in has no name, or (when Apple asks for consent again and sends
/// `user`) the one sent then, never the forgotten one.
#[tokio::test]
async fn the_name_is_forgotten_with_the_user() {
    let clock = common::manual_clock();
    let stack = Stack::with(common::Options {
        clock: clock.clone(),
        ..Default::default()
    });
    for (kind, email) in [
        ("consent-revoked", "jane@example.com"),
        ("account-delete", "john@example.com"),
    ] {
        let mut b = Browser::new();
        stack.sign_in(&mut b, email).await;
        assert_eq!(
            name_upstream(&mut b, &stack).await.as_deref(),
            Some("Jane Appleseed"),
            "{kind}"
        );
        let body = stack
            .emulator
            .notification(kind, &stack.emulator.sub_of(email));
        let url = stack.at(applegate::config::DEFAULT_NOTIFICATIONS_PATH);
        assert_eq!(
            applegate::emulator::Emulator::send_notification(&url, body)
                .await
                .unwrap(),
            200
        );
        clock.advance(1);
        let mut person = Person::new(email);
        (person.first_name, person.last_name) = ("Again".into(), "Later".into());
        let mut again = Browser::new();
        again
            .sign_in(&stack.at("/oauth2/start?rd=/"), &person)
            .await;
        let name = name_upstream(&mut again, &stack).await;
        assert!(
            matches!(name.as_deref(), None | Some("Again Later")),
            "{kind}: {name:?}"
        );
    }
}
