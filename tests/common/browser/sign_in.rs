//! Signing in: through the emulator's page as a person fills it in, and
//! back to the callback with Apple's cross-site POST.

use super::{Browser, Nav, Page};

/// What the person does on the emulator's page.
#[derive(Debug, Clone)]
pub struct Person {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub hide_my_email: bool,
    pub cancel: bool,
}

impl Person {
    pub fn new(email: &str) -> Self {
        Person {
            email: email.into(),
            first_name: "Jane".into(),
            last_name: "Appleseed".into(),
            hide_my_email: false,
            cancel: false,
        }
    }
}

/// A sign-in stopped just before Apple's page posts back to us.
pub struct AtApple {
    /// The emulator's auto-submitting form_post page.
    pub form_post: Page,
    /// The callback URL the page posts to.
    pub callback: String,
    /// The fields it posts.
    pub fields: Vec<(String, String)>,
    /// The emulator's page URL: the origin of the cross-site POST.
    pub origin: String,
}

/// The steps of one sign-in, for tests that look inside.
pub struct SignIn {
    /// The emulator's auto-submitting form_post page.
    pub form_post: Page,
    /// The callback's fields, as posted.
    pub fields: Vec<(String, String)>,
    /// The callback URL.
    pub callback: String,
    /// The callback's answer.
    pub callback_page: Page,
}

impl Browser {
    /// Goes from `start` (a page or `/oauth2/start` URL) through the
    /// emulator's page, as `person` fills it in, up to the form_post that
    /// would go back to the callback (not sent).
    pub async fn through_apple(&mut self, start: &str, person: &Person) -> AtApple {
        let mut page = self.get(start, Nav::TopLevel).await;
        // Follow our redirects until we land on Apple's (the emulator's) page.
        for _ in 0..5 {
            if page.status != 302 {
                break;
            }
            page = self.get(&page.location().unwrap(), Nav::TopLevel).await;
        }
        assert_eq!(
            page.status, 200,
            "expected the emulator's page, got {} {}: {}",
            page.status, page.url, page.body
        );
        let (action, mut fields) = page.form();
        fields.retain(|(k, _)| {
            !matches!(
                k.as_str(),
                "email" | "first_name" | "last_name" | "hide_my_email"
            )
        });
        fields.push(("email".into(), person.email.clone()));
        fields.push(("first_name".into(), person.first_name.clone()));
        fields.push(("last_name".into(), person.last_name.clone()));
        if person.hide_my_email {
            fields.push(("hide_my_email".into(), "1".into()));
        }
        fields.push((
            "action".into(),
            if person.cancel { "cancel" } else { "continue" }.into(),
        ));
        let origin = page.url.clone();
        let form_post = self.post_form(&action, &fields, &origin).await;
        assert_eq!(
            form_post.status, 200,
            "emulator refused: {}",
            form_post.body
        );
        let (callback, fields) = form_post.form();
        AtApple {
            form_post,
            callback,
            fields,
            origin,
        }
    }

    /// Posts the form_post back to the callback, cross-site as Apple's page does.
    pub async fn post_back(&mut self, at: &AtApple) -> Page {
        self.post_form(&at.callback, &at.fields, &at.origin).await
    }

    /// Goes from `start` through the emulator to the callback; returns the
    /// steps (does not follow the final redirect).
    pub async fn sign_in_steps(&mut self, start: &str, person: &Person) -> SignIn {
        let at = self.through_apple(start, person).await;
        let callback_page = self.post_back(&at).await;
        SignIn {
            form_post: at.form_post,
            fields: at.fields,
            callback: at.callback,
            callback_page,
        }
    }

    /// Signs in from `start` and follows to the final page.
    pub async fn sign_in(&mut self, start: &str, person: &Person) -> Page {
        let steps = self.sign_in_steps(start, person).await;
        self.follow(steps.callback_page).await
    }
}
