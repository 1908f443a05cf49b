//! Scenarios for [`AccountStore`] backends: each stores and fetches, and the last ones drive
//! the rules of [`Accounts`] over the backend.

#![allow(clippy::unwrap_used)]

use chrono::Duration;
use std::sync::Arc;

use super::support::{ManualClock, at};
use crate::accounts::{
    AccountStore, Accounts, NewRunnerToken, NewUser, ResetRecord, Role, RunnerTokenId, SecretHash,
    SessionRecord, UserId,
};
use crate::{Error, ItemKind, MachineName};

fn new_user(name: &str, role: Role) -> NewUser {
    NewUser {
        username: name.to_string(),
        username_key: name.to_lowercase(),
        email: Some(format!("{}@lab.example", name.to_lowercase())),
        role,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$salt$hash-of-{name}"),
        created_at: at(1),
    }
}

fn session(key: &str, user: UserId, expires_in: i64) -> SessionRecord {
    SessionRecord {
        key: SecretHash::of(key),
        user_id: user,
        created_at: at(0),
        expires_at: at(expires_in),
    }
}

fn reset(key: &str, user: UserId) -> ResetRecord {
    ResetRecord {
        key: SecretHash::of(key),
        user_id: user,
        created_at: at(0),
        expires_at: at(3600),
    }
}

fn accounts(store: Arc<dyn AccountStore>) -> (Accounts, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(at(0)));
    (
        Accounts::new(store).with_clock(Arc::clone(&clock) as _),
        clock,
    )
}

/// Users keep every field, in any script, and are found by id and by key.
pub async fn accounts_users_round_trip(store: Arc<dyn AccountStore>) {
    let ada = store
        .create_user(new_user("Ada", Role::Admin))
        .await
        .unwrap();
    let mut unicode = new_user("Jürgen_测试", Role::Viewer);
    unicode.email = None;
    let jurgen = store.create_user(unicode.clone()).await.unwrap();
    assert_ne!(ada.id, jurgen.id);
    assert_eq!(ada.username, "Ada");
    assert_eq!(ada.email.as_deref(), Some("ada@lab.example"));
    assert_eq!(ada.role, Role::Admin);
    assert_eq!(ada.created_at, at(1));

    let by_id = store.user(jurgen.id).await.unwrap().unwrap();
    assert_eq!(by_id.user, jurgen);
    assert_eq!(by_id.user.email, None);
    assert_eq!(by_id.password_hash, unicode.password_hash);
    let by_key = store.user_by_key("jürgen_测试").await.unwrap().unwrap();
    assert_eq!(by_key.user, jurgen);
    assert!(store.user_by_key("nobody").await.unwrap().is_none());
    assert!(store.user(UserId(i64::MAX)).await.unwrap().is_none());
    assert_eq!(store.users().await.unwrap(), vec![ada, jurgen]);
}

/// A username is taken without regard to case; the refused user changes nothing.
pub async fn accounts_usernames_unique_without_case(store: Arc<dyn AccountStore>) {
    let first = store
        .create_user(new_user("Grace", Role::Viewer))
        .await
        .unwrap();
    let clash = store.create_user(new_user("GRACE", Role::Admin)).await;
    assert!(matches!(clash, Err(Error::Conflict { .. })), "{clash:?}");
    assert_eq!(store.users().await.unwrap(), vec![first]);
}

/// Password hashes and roles change; unknown ids are `NotFound` of kind user.
pub async fn accounts_users_change_and_delete(store: Arc<dyn AccountStore>) {
    let user = store
        .create_user(new_user("Linus", Role::Viewer))
        .await
        .unwrap();
    store
        .set_password_hash(user.id, "$argon2id$new")
        .await
        .unwrap();
    assert_eq!(
        store.user(user.id).await.unwrap().unwrap().password_hash,
        "$argon2id$new"
    );
    let promoted = store.set_role(user.id, Role::Admin).await.unwrap();
    assert_eq!(promoted.role, Role::Admin);
    assert_eq!(
        store.user(user.id).await.unwrap().unwrap().user.role,
        Role::Admin
    );
    // The store itself keeps an admin: the only one is neither demoted nor deleted.
    let last = store.set_role(user.id, Role::Viewer).await;
    assert!(matches!(last, Err(Error::Conflict { .. })), "{last:?}");
    let last = store.delete_user(user.id).await;
    assert!(matches!(last, Err(Error::Conflict { .. })), "{last:?}");
    assert_eq!(
        store.user(user.id).await.unwrap().unwrap().user.role,
        Role::Admin
    );
    let grace = store
        .create_user(new_user("Grace", Role::Admin))
        .await
        .unwrap();
    let demoted = store.set_role(user.id, Role::Viewer).await.unwrap();
    assert_eq!(demoted.role, Role::Viewer);

    let missing = UserId(user.id.get() + 1000);
    let not_found = |result: Result<(), Error>| {
        matches!(
            result,
            Err(Error::NotFound {
                kind: ItemKind::User,
                ..
            })
        )
    };
    assert!(not_found(store.set_password_hash(missing, "x").await));
    assert!(not_found(
        store.set_role(missing, Role::Admin).await.map(|_| ())
    ));
    assert!(not_found(store.delete_user(missing).await));

    store
        .insert_session(session("s1", user.id, 60))
        .await
        .unwrap();
    store.insert_reset(reset("r1", user.id)).await.unwrap();
    store.delete_user(user.id).await.unwrap();
    assert!(store.user(user.id).await.unwrap().is_none());
    assert!(
        store
            .session(&SecretHash::of("s1"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.reset(&SecretHash::of("r1")).await.unwrap().is_none());
    assert_eq!(store.users().await.unwrap(), vec![grace]);
    // The name is free again.
    store
        .create_user(new_user("linus", Role::Viewer))
        .await
        .unwrap();
}

/// An email address is set, changed and removed, and reset links follow it. Optional
/// ([`AccountStore::set_email`]): a store without it answers `NotSupported` and the scenario
/// ends.
pub async fn accounts_emails_change(store: Arc<dyn AccountStore>) {
    let (accounts, _clock) = accounts(Arc::clone(&store));
    let linus = store
        .create_user(new_user("Linus", Role::Viewer))
        .await
        .unwrap();
    let changed = match store.set_email(linus.id, Some("Linus.T@Lab.example")).await {
        Err(Error::NotSupported { operation }) => {
            eprintln!("skipped: this store does not support `{operation}` (optional)");
            return;
        }
        other => other.unwrap(),
    };
    assert_eq!(changed.email.as_deref(), Some("Linus.T@Lab.example"));
    assert_eq!(changed.username, linus.username);
    assert_eq!(changed.role, linus.role);
    assert_eq!(changed.created_at, linus.created_at);
    let stored = store.user(linus.id).await.unwrap().unwrap();
    assert_eq!(stored.user, changed);
    assert_eq!(
        stored.password_hash,
        new_user("Linus", Role::Viewer).password_hash,
        "the password is kept"
    );
    assert_eq!(store.users().await.unwrap(), vec![changed.clone()]);
    assert_eq!(
        store.user_by_key("linus").await.unwrap().unwrap().user,
        changed
    );
    let unicode = store
        .set_email(linus.id, Some("jürgen@bücher.example"))
        .await
        .unwrap();
    assert_eq!(unicode.email.as_deref(), Some("jürgen@bücher.example"));
    let cleared = store.set_email(linus.id, None).await.unwrap();
    assert_eq!(cleared.email, None);
    assert_eq!(
        store.user(linus.id).await.unwrap().unwrap().user.email,
        None
    );
    let missing = store
        .set_email(UserId(linus.id.get() + 1000), Some("x@y"))
        .await;
    assert!(
        matches!(
            missing,
            Err(Error::NotFound {
                kind: ItemKind::User,
                ..
            })
        ),
        "{missing:?}"
    );

    // Through the rules: checked, trimmed, blank removes it; reset links follow it.
    let bad = accounts.set_email(linus.id, Some("not an address")).await;
    assert!(matches!(bad, Err(Error::InvalidInput { ref field, .. }) if field == "email"));
    let no_address = accounts.grant_password_reset(linus.id).await;
    assert!(matches!(no_address, Err(Error::InvalidInput { ref field, .. }) if field == "email"));
    let set = accounts
        .set_email(linus.id, Some("  linus@new.example "))
        .await
        .unwrap();
    assert_eq!(set.email.as_deref(), Some("linus@new.example"));
    let grants = accounts
        .request_password_reset("linus@new.example")
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
    assert!(
        accounts
            .request_password_reset("linus@lab.example")
            .await
            .unwrap()
            .is_empty(),
        "the old address no longer matches"
    );
    let granted = accounts.grant_password_reset(linus.id).await.unwrap();
    assert_eq!(granted.user.email.as_deref(), Some("linus@new.example"));
    assert_eq!(
        accounts.reset_user(&granted.secret).await.unwrap(),
        Some(set.clone())
    );
    let removed = accounts.set_email(linus.id, Some("   ")).await.unwrap();
    assert_eq!(removed.email, None);
}

/// A user changes their own password with the current one: the other sessions end, the
/// asking browser gets a new one, the old password stops working.
pub async fn accounts_own_password_change(store: Arc<dyn AccountStore>) {
    let (accounts, _clock) = accounts(store);
    let ada = accounts
        .create_user("ada", None, "correct horse", Role::Viewer)
        .await
        .unwrap();
    let here = accounts
        .sign_in("ada", "correct horse")
        .await
        .unwrap()
        .unwrap();
    let elsewhere = accounts
        .sign_in("ada", "correct horse")
        .await
        .unwrap()
        .unwrap();

    let wrong = accounts
        .change_password(ada.id, "wrong horse", "battery staple")
        .await
        .unwrap();
    assert!(wrong.is_none());
    let short = accounts
        .change_password(ada.id, "correct horse", "short")
        .await;
    assert!(matches!(short, Err(Error::InvalidInput { ref field, .. }) if field == "password"));
    for session in [&here, &elsewhere] {
        assert!(
            accounts.session(&session.secret).await.unwrap().is_some(),
            "nothing changed yet"
        );
    }

    let changed = accounts
        .change_password(ada.id, "correct horse", "battery staple")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.user, ada);
    assert!(accounts.session(&here.secret).await.unwrap().is_none());
    assert!(accounts.session(&elsewhere.secret).await.unwrap().is_none());
    assert_eq!(
        accounts
            .session(&changed.secret)
            .await
            .unwrap()
            .unwrap()
            .user,
        ada
    );
    assert!(
        accounts
            .sign_in("ada", "correct horse")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        accounts
            .sign_in("ada", "battery staple")
            .await
            .unwrap()
            .is_some()
    );
    let missing = accounts
        .change_password(
            UserId(ada.id.get() + 1000),
            "battery staple",
            "new password",
        )
        .await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );
}

/// Sessions are kept by key until deleted one by one, per user, or once expired.
pub async fn accounts_sessions(store: Arc<dyn AccountStore>) {
    let ada = store
        .create_user(new_user("Ada", Role::Admin))
        .await
        .unwrap();
    let bob = store
        .create_user(new_user("Bob", Role::Viewer))
        .await
        .unwrap();
    let record = session("a1", ada.id, 60);
    store.insert_session(record.clone()).await.unwrap();
    store
        .insert_session(session("a2", ada.id, 7200))
        .await
        .unwrap();
    store
        .insert_session(session("b1", bob.id, 30))
        .await
        .unwrap();
    store
        .insert_session(session("b2", bob.id, 7200))
        .await
        .unwrap();
    assert_eq!(
        store.session(&record.key).await.unwrap(),
        Some(record.clone())
    );
    assert!(
        store
            .session(&SecretHash::of("zz"))
            .await
            .unwrap()
            .is_none()
    );

    store.delete_session(&record.key).await.unwrap();
    store.delete_session(&record.key).await.unwrap();
    assert!(store.session(&record.key).await.unwrap().is_none());
    assert!(
        store
            .session(&SecretHash::of("a2"))
            .await
            .unwrap()
            .is_some()
    );

    assert_eq!(store.delete_expired_sessions(at(100)).await.unwrap(), 1);
    assert!(
        store
            .session(&SecretHash::of("b1"))
            .await
            .unwrap()
            .is_none()
    );

    store.delete_user_sessions(ada.id).await.unwrap();
    assert!(
        store
            .session(&SecretHash::of("a2"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .session(&SecretHash::of("b2"))
            .await
            .unwrap()
            .is_some()
    );
}

/// Runner tokens keep their bound machines; revoking keeps the first time; unknown ids are
/// `NotFound` of kind runner token; a secret hash is stored once.
pub async fn accounts_runner_tokens(store: Arc<dyn AccountStore>) {
    let machines = vec!["MACHINE #1".to_string(), "Prüfstand 7".to_string()];
    let bound = store
        .insert_runner_token(NewRunnerToken {
            name: "rig A".into(),
            secret_hash: SecretHash::of("stpt_a"),
            machines: machines.clone(),
            created_at: at(5),
        })
        .await
        .unwrap();
    let any = store
        .insert_runner_token(NewRunnerToken {
            name: "fleet".into(),
            secret_hash: SecretHash::of("stpt_b"),
            machines: Vec::new(),
            created_at: at(6),
        })
        .await
        .unwrap();
    assert_eq!(bound.name, "rig A");
    assert_eq!(bound.machines, machines);
    assert_eq!(bound.created_at, at(5));
    assert_eq!(bound.revoked_at, None);
    assert!(bound.allows(&MachineName::new("machine #1").unwrap()));
    assert!(!bound.allows(&MachineName::new("machine #2").unwrap()));
    assert!(any.allows(&MachineName::new("machine #2").unwrap()));

    assert_eq!(
        store
            .runner_token_by_hash(&SecretHash::of("stpt_a"))
            .await
            .unwrap(),
        Some(bound.clone())
    );
    assert!(
        store
            .runner_token_by_hash(&SecretHash::of("stpt_x"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.runner_tokens().await.unwrap(),
        vec![bound.clone(), any.clone()]
    );

    let duplicate = store
        .insert_runner_token(NewRunnerToken {
            name: "again".into(),
            secret_hash: SecretHash::of("stpt_a"),
            machines: Vec::new(),
            created_at: at(7),
        })
        .await;
    assert!(
        matches!(duplicate, Err(Error::Conflict { .. })),
        "{duplicate:?}"
    );

    let revoked = store.revoke_runner_token(bound.id, at(10)).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(at(10)));
    let again = store.revoke_runner_token(bound.id, at(20)).await.unwrap();
    assert_eq!(again.revoked_at, Some(at(10)));
    let fetched = store
        .runner_token_by_hash(&SecretHash::of("stpt_a"))
        .await
        .unwrap();
    assert_eq!(fetched.unwrap().revoked_at, Some(at(10)));
    let missing = store
        .revoke_runner_token(RunnerTokenId(any.id.get() + 1000), at(30))
        .await;
    assert!(
        matches!(
            missing,
            Err(Error::NotFound {
                kind: ItemKind::RunnerToken,
                ..
            })
        ),
        "{missing:?}"
    );
    assert_eq!(store.runner_tokens().await.unwrap().len(), 2);
}

/// A reset grant can be read many times but taken once, even by concurrent callers.
pub async fn accounts_resets_are_taken_once(store: Arc<dyn AccountStore>) {
    let ada = store
        .create_user(new_user("Ada", Role::Admin))
        .await
        .unwrap();
    let grant = reset("link", ada.id);
    store.insert_reset(grant.clone()).await.unwrap();
    assert_eq!(store.reset(&grant.key).await.unwrap(), Some(grant.clone()));
    assert_eq!(store.reset(&grant.key).await.unwrap(), Some(grant.clone()));

    let takers = (0..8).map(|_| {
        let store = Arc::clone(&store);
        let key = grant.key.clone();
        tokio::spawn(async move { store.take_reset(&key).await.unwrap() })
    });
    let mut taken = Vec::new();
    for taker in takers {
        if let Some(record) = taker.await.unwrap() {
            taken.push(record);
        }
    }
    assert_eq!(taken, vec![grant.clone()]);
    assert!(store.reset(&grant.key).await.unwrap().is_none());
    assert!(store.take_reset(&grant.key).await.unwrap().is_none());
}

/// The rules of [`Accounts`] over the backend: sign-in, expiry, sign-out, reset links,
/// runner tokens and the last admin.
pub async fn accounts_rules_over_the_store(store: Arc<dyn AccountStore>) {
    let (accounts, clock) = accounts(store);
    let ada = accounts
        .create_user("Ada", Some("ada@lab.example"), "correct horse", Role::Admin)
        .await
        .unwrap();
    let taken = accounts
        .create_user("ADA", None, "another password", Role::Viewer)
        .await;
    assert!(matches!(taken, Err(Error::Conflict { .. })));
    let short = accounts
        .create_user("bob", None, "short", Role::Viewer)
        .await;
    assert!(matches!(short, Err(Error::InvalidInput { ref field, .. }) if field == "password"));

    assert!(
        accounts
            .sign_in("ada", "wrong horse")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        accounts
            .sign_in("nobody", "correct horse")
            .await
            .unwrap()
            .is_none()
    );
    let signed_in = accounts
        .sign_in("ADA", "correct horse")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(signed_in.user, ada);
    let session = accounts.session(&signed_in.secret).await.unwrap().unwrap();
    assert_eq!(session.user, ada);
    assert!(accounts.session("forged").await.unwrap().is_none());

    clock.advance(accounts.session_ttl() + Duration::seconds(1));
    assert!(accounts.session(&signed_in.secret).await.unwrap().is_none());
    let again = accounts
        .sign_in("ada", "correct horse")
        .await
        .unwrap()
        .unwrap();
    accounts.sign_out(&again.secret).await.unwrap();
    assert!(accounts.session(&again.secret).await.unwrap().is_none());

    // A reset link works once, signs the user out, and the old password stops working.
    let kept = accounts
        .sign_in("ada", "correct horse")
        .await
        .unwrap()
        .unwrap();
    let grants = accounts
        .request_password_reset("ADA@lab.example")
        .await
        .unwrap();
    assert_eq!(grants.len(), 1);
    let link = &grants[0].secret;
    assert_eq!(accounts.reset_user(link).await.unwrap(), Some(ada.clone()));
    let too_short = accounts.reset_password(link, "short").await;
    assert!(matches!(too_short, Err(Error::InvalidInput { .. })));
    assert_eq!(
        accounts
            .reset_password(link, "battery staple")
            .await
            .unwrap(),
        Some(ada.clone())
    );
    assert!(
        accounts
            .reset_password(link, "battery staple 2")
            .await
            .unwrap()
            .is_none()
    );
    assert!(accounts.session(&kept.secret).await.unwrap().is_none());
    assert!(
        accounts
            .sign_in("ada", "correct horse")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        accounts
            .sign_in("ada", "battery staple")
            .await
            .unwrap()
            .is_some()
    );

    // An expired link does nothing.
    let grants = accounts.request_password_reset("ada").await.unwrap();
    clock.advance(Accounts::DEFAULT_RESET_TTL + Duration::seconds(1));
    assert!(
        accounts
            .reset_user(&grants[0].secret)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        accounts
            .reset_password(&grants[0].secret, "third password")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        accounts
            .request_password_reset("nobody")
            .await
            .unwrap()
            .is_empty()
    );

    // Runner tokens authenticate until revoked.
    let issued = accounts
        .create_runner_token("rig A", &["MACHINE #1".to_string()])
        .await
        .unwrap();
    assert!(issued.secret.starts_with("stpt_"));
    let token = accounts
        .authenticate_runner(&issued.secret)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(token.machines, vec!["MACHINE #1".to_string()]);
    assert!(
        accounts
            .authenticate_runner("stpt_forged")
            .await
            .unwrap()
            .is_none()
    );
    accounts.revoke_runner_token(token.id).await.unwrap();
    assert!(
        accounts
            .authenticate_runner(&issued.secret)
            .await
            .unwrap()
            .is_none()
    );

    // The last admin cannot be removed or demoted.
    let last = accounts.delete_user(ada.id).await;
    assert!(matches!(last, Err(Error::Conflict { .. })));
    let demoted = accounts.set_role(ada.id, Role::Viewer).await;
    assert!(matches!(demoted, Err(Error::Conflict { .. })));
    let grace = accounts
        .create_user("grace", None, "hopper hopper", Role::Admin)
        .await
        .unwrap();
    accounts.delete_user(ada.id).await.unwrap();
    assert_eq!(accounts.users().await.unwrap(), vec![grace]);
}

/// Two admins demoting or deleting each other at the same time never leave no admin: the
/// store checks and changes in one atomic step, so one of them is refused (`Conflict`, or
/// `Busy` from a database that broke the tie by aborting one).
pub async fn accounts_last_admin_survives_concurrent_changes(store: Arc<dyn AccountStore>) {
    let (accounts, _clock) = accounts(store);
    let create_admin = |name: String| {
        let accounts = accounts.clone();
        async move {
            accounts
                .create_user(&name, None, "correct horse", Role::Admin)
                .await
                .unwrap()
        }
    };
    let mut first = create_admin("admin-0".to_string()).await;
    for round in 1..=16 {
        let second = create_admin(format!("admin-{round}")).await;
        let (one, other) = (first.id, second.id);
        let (a, b) = match round % 3 {
            0 => tokio::join!(
                accounts.set_role(one, Role::Viewer),
                accounts.set_role(other, Role::Viewer)
            ),
            1 => {
                let (a, b) = tokio::join!(accounts.delete_user(one), accounts.delete_user(other));
                (a.map(|()| first.clone()), b.map(|()| second.clone()))
            }
            _ => {
                let (a, b) = tokio::join!(
                    accounts.delete_user(one),
                    accounts.set_role(other, Role::Viewer)
                );
                (a.map(|()| first.clone()), b)
            }
        };
        let refused = |result: &Result<_, Error>| {
            matches!(result, Err(Error::Conflict { .. } | Error::Busy { .. }))
        };
        assert!(
            (a.is_ok() && refused(&b)) || (refused(&a) && b.is_ok()),
            "round {round}: exactly one change may pass: {a:?} / {b:?}"
        );
        let admins: Vec<_> = accounts
            .users()
            .await
            .unwrap()
            .into_iter()
            .filter(|user| user.is_admin())
            .collect();
        assert_eq!(admins.len(), 1, "round {round}: {admins:?}");
        first = admins[0].clone();
    }
}
