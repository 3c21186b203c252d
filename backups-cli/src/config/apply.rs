//! Fills what the flags left unset from a profile: flags (and their
//! `BACKUPS_*` variables) win, then the profile, then the built-in
//! defaults (which the commands apply to whatever is still unset).

use crate::args::{GlobalArgs, MongoArgs};
use crate::commands::create;
use crate::config::Profile;
use crate::keys::EncryptArgs;

/// The store and its options. Store options from the profile come first,
/// so a `--store-option` for the same key (applied later) wins.
pub fn global(global: &mut GlobalArgs, p: &Profile) {
    if global.store.is_none() {
        global.store.clone_from(&p.store);
    }
    if global.endpoint.is_none() {
        global.endpoint.clone_from(&p.endpoint);
    }
    if global.region.is_none() {
        global.region.clone_from(&p.region);
    }
    // A bool flag cannot say "false": the profile can only turn it on.
    global.allow_http |= p.allow_http.unwrap_or(false);
    let mut options: Vec<(String, String)> = p
        .store_option
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    options.append(&mut global.store_options);
    global.store_options = options;
}

/// What `backups create` takes from the profile.
pub fn create(args: &mut create::Args, p: &Profile) {
    if args.paths.is_empty() {
        args.paths.clone_from(&p.paths);
    }
    if args.excludes.is_empty() {
        args.excludes.clone_from(&p.excludes);
    }
    if args.labels.is_empty() {
        args.labels.clone_from(&p.labels);
    }
    if args.include_dbs.is_empty() {
        args.include_dbs.clone_from(&p.include_dbs);
    }
    if args.exclude_ns.is_empty() {
        args.exclude_ns.clone_from(&p.exclude_ns);
    }
    if args.compression.is_none() {
        args.compression = p.compression;
    }
    if args.compression_level.is_none() {
        args.compression_level = p.compression_level;
    }
    if args.lock_cmd.is_empty() {
        args.lock_cmd.clone_from(&p.lock_cmd);
    }
    if args.unlock_cmd.is_empty() {
        args.unlock_cmd.clone_from(&p.unlock_cmd);
    }
    args.immutable.fill_from(p);
    args.juju |= p.juju.unwrap_or(false);
    if args.juju_data_dir.is_none() {
        args.juju_data_dir.clone_from(&p.juju_data_dir);
    }
    if args.juju_mongo_address.is_none() {
        args.juju_mongo_address.clone_from(&p.juju_mongo_address);
    }
    mongo(&mut args.mongo, p);
    keys(&mut args.encrypt, p);
}

/// The MongoDB URI (or its file), unless a flag gave one.
pub fn mongo(mongo: &mut MongoArgs, p: &Profile) {
    if mongo.mongo_uri.is_none() && mongo.mongo_uri_file.is_none() {
        mongo.mongo_uri.clone_from(&p.mongo_uri);
        mongo.mongo_uri_file.clone_from(&p.mongo_uri_file);
    }
}

/// The recipients, unless a flag gave any.
pub fn keys(keys: &mut EncryptArgs, p: &Profile) {
    if keys.encrypt_to.is_empty()
        && keys.recipients_file.is_none()
        && keys.passphrase_file.is_none()
    {
        keys.encrypt_to.clone_from(&p.recipients);
        keys.recipients_file.clone_from(&p.recipients_file);
    }
}
