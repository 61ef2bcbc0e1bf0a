//! `/access/...`: ticket login (with TFA and renewal), realms, permissions, tokens.

use serde_json::{Map, Value, json};

use super::{Ctx, Reply};
use crate::auth::{self, CAP_AREAS, Identity, Token};
use crate::error::ApiError;
use crate::state::Cluster;

/// `GET /access/ticket`: dummy.
pub fn get_ticket(_c: &Ctx<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::null())
}

/// The `cap` object of a login answer.
pub fn cap(c: &Cluster, ident: &Identity) -> Value {
    let mut out = Map::new();
    for (area, path, privs) in CAP_AREAS {
        let mut m = Map::new();
        for p in *privs {
            if c.has_priv_below(ident, path, p) {
                m.insert((*p).to_string(), json!(1));
            }
        }
        out.insert((*area).to_string(), Value::Object(m));
    }
    Value::Object(out)
}

fn full_login(ctx: &Ctx<'_>, c: &Cluster, userid: &str) -> Reply {
    let now = c.now();
    let ident = Identity {
        userid: userid.to_string(),
        tokenid: None,
    };
    let mut data = json!({
        "username": userid,
        "ticket": auth::make_ticket(ctx.state.key(), userid, now),
        "CSRFPreventionToken": auth::make_csrf(ctx.state.key(), userid, now),
        "cap": cap(c, &ident),
    });
    if c.nodes.len() > 1
        && c.has_priv(&ident, "/", "Sys.Audit")
        && let Some(m) = data.as_object_mut()
    {
        m.insert("clustername".into(), json!(c.name));
    }
    Reply::data(data)
}

/// `POST /access/ticket`: login, TFA second step, renewal, or privilege check.
pub fn create_ticket(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let username = ctx.p("username")?;
    let password = ctx.p("password")?;
    let userid = if username.contains('@') {
        username.clone()
    } else {
        format!(
            "{username}@{}",
            ctx.params.str("realm").unwrap_or_else(|| "pam".into())
        )
    };
    let st = ctx.state;
    let c = st.lock();
    let now = c.now();
    let lifetime = c.ticket_lifetime;
    let enabled = c.users.get(&userid).map(|u| u.enabled).unwrap_or(false);

    // Privilege verification mode (path + privs).
    if let (Some(path), Some(privs)) = (ctx.params.str("path"), ctx.params.str("privs")) {
        let Some(u) = auth::verify_ticket(st.key(), &password, now, lifetime) else {
            return Err(ApiError::login_failed());
        };
        if u != userid || !enabled {
            return Err(ApiError::login_failed());
        }
        let ident = Identity {
            userid: u.clone(),
            tokenid: None,
        };
        for p in crate::validate::split_list(&privs) {
            if !c.has_priv(&ident, &path, &p) {
                return Err(ApiError::perm(&path, &p));
            }
        }
        return Ok(Reply::data(json!({ "username": u })));
    }

    // TFA second step.
    if let Some(challenge) = ctx.params.str("tfa-challenge") {
        if ctx.params.has("otp") || !enabled {
            return Err(ApiError::login_failed());
        }
        if !auth::verify_tfa_ticket(st.key(), &userid, &challenge, now, lifetime) {
            return Err(ApiError::login_failed());
        }
        let Some(secret) = c.users.get(&userid).and_then(|u| u.totp_secret.clone()) else {
            return Err(ApiError::login_failed());
        };
        let ok = password
            .strip_prefix("totp:")
            .map(|code| auth::verify_totp(&secret, code, now))
            .unwrap_or(false);
        if !ok {
            return Err(ApiError::login_failed());
        }
        return Ok(full_login(ctx, &c, &userid));
    }

    // Renewal: the password is a valid ticket of the same user.
    if password.starts_with("PVE:") {
        return match auth::verify_ticket(st.key(), &password, now, lifetime) {
            Some(u) if u == userid && enabled => Ok(full_login(ctx, &c, &userid)),
            _ => Err(ApiError::login_failed()),
        };
    }

    let Some(user) = c.users.get(&userid) else {
        return Err(ApiError::login_failed());
    };
    if !user.enabled || user.password != password {
        return Err(ApiError::login_failed());
    }
    if user.totp_secret.is_some() {
        let challenge = r#"{"totp":true}"#;
        return Ok(Reply::data(json!({
            "username": userid,
            "ticket": auth::make_tfa_ticket(st.key(), &userid, challenge, now),
            "CSRFPreventionToken": auth::make_csrf(st.key(), &userid, now),
            "NeedTFA": 1,
        })));
    }
    Ok(full_login(ctx, &c, &userid))
}

/// `GET /access/domains`.
pub fn domains(_c: &Ctx<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::data(json!([
        {"realm": "pam", "type": "pam", "comment": "Linux PAM standard authentication"},
        {"realm": "pve", "type": "pve", "comment": "Proxmox VE authentication server", "tfa": "oath"},
    ])))
}

/// `GET /access/permissions`: the caller's privileges per path.
pub fn permissions(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let me = ctx.ident()?.clone();
    let c = ctx.state.lock();
    let ident = match ctx.params.str("userid") {
        Some(u) if u != me.auth_id() => {
            if !c.has_priv(&me, "/access", "Sys.Audit") {
                return Err(ApiError::perm("/access", "Sys.Audit"));
            }
            match u.split_once('!') {
                Some((user, tok)) => Identity {
                    userid: user.into(),
                    tokenid: Some(tok.into()),
                },
                None => Identity {
                    userid: u,
                    tokenid: None,
                },
            }
        }
        _ => me,
    };
    // With `path`, exactly that path (even when empty); without, every effective path that
    // grants something. Each privilege carries its propagate flag, as Proxmox answers.
    let (paths, keep_empty): (Vec<String>, bool) = match ctx.params.str("path") {
        Some(p) => (vec![p], true),
        None => (c.effective_paths().into_iter().collect(), false),
    };
    let mut out = Map::new();
    for p in paths {
        let privs = c.permissions(&ident, &p);
        if privs.is_empty() && !keep_empty {
            continue;
        }
        let m: Map<String, Value> = privs
            .into_iter()
            .map(|(k, prop)| (k.to_string(), json!(i32::from(prop))))
            .collect();
        out.insert(p, Value::Object(m));
    }
    Ok(Reply::data(Value::Object(out)))
}

fn check_token_perm(ctx: &Ctx<'_>, c: &Cluster, userid: &str) -> Result<(), ApiError> {
    let me = ctx.ident()?;
    if me.userid == userid || c.has_priv(me, "/access/groups", "User.Modify") {
        Ok(())
    } else {
        Err(ApiError::perm("/access/groups", "User.Modify"))
    }
}

fn token_info(t: &Token) -> Value {
    let mut v =
        json!({"tokenid": t.name(), "expire": t.expire, "privsep": if t.privsep { 1 } else { 0 }});
    if let (Some(c), Some(m)) = (&t.comment, v.as_object_mut()) {
        m.insert("comment".into(), json!(c));
    }
    v
}

/// `GET /access/users/{userid}/token`.
pub fn token_index(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let userid = ctx.p("userid")?;
    let c = ctx.state.lock();
    check_token_perm(ctx, &c, &userid)?;
    if !c.users.contains_key(&userid) {
        return Err(ApiError::internal(format!("no such user ('{userid}')")));
    }
    let list: Vec<Value> = c
        .tokens
        .values()
        .filter(|t| t.user() == userid)
        .map(token_info)
        .collect();
    Ok(Reply::data(Value::Array(list)))
}

/// `POST /access/users/{userid}/token/{tokenid}`.
pub fn token_create(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let userid = ctx.p("userid")?;
    let tokenid = ctx.p("tokenid")?;
    let mut c = ctx.state.lock();
    check_token_perm(ctx, &c, &userid)?;
    if !c.users.contains_key(&userid) {
        return Err(ApiError::internal(format!("no such user ('{userid}')")));
    }
    let full = format!("{userid}!{tokenid}");
    if c.tokens.contains_key(&full) {
        return Err(ApiError::internal("Token already exists."));
    }
    let t = Token {
        full_id: full.clone(),
        secret: uuid::Uuid::new_v4().to_string(),
        privsep: ctx.params.flag("privsep", true),
        expire: ctx
            .params
            .int("expire")
            .and_then(|e| u64::try_from(e).ok())
            .unwrap_or(0),
        comment: ctx.params.str("comment"),
    };
    let mut info = token_info(&t);
    if let Some(m) = info.as_object_mut() {
        m.remove("tokenid");
    }
    let value = t.secret.clone();
    c.tokens.insert(full.clone(), t);
    Ok(Reply::data(
        json!({"full-tokenid": full, "info": info, "value": value}),
    ))
}

/// `DELETE /access/users/{userid}/token/{tokenid}`.
pub fn token_delete(ctx: &Ctx<'_>) -> Result<Reply, ApiError> {
    let userid = ctx.p("userid")?;
    let tokenid = ctx.p("tokenid")?;
    let mut c = ctx.state.lock();
    check_token_perm(ctx, &c, &userid)?;
    let full = format!("{userid}!{tokenid}");
    if c.tokens.remove(&full).is_none() {
        return Err(ApiError::internal(format!(
            "no such token '{tokenid}' for user '{userid}'"
        )));
    }
    c.acl.retain(|e| e.ugid != full);
    Ok(Reply::null())
}
