//! The constants in this crate say what `wit/` says.

use std::path::PathBuf;

use divoc_contract::{World, PACKAGE, PACKAGE_AT_VERSION, VERSION};
use wit_parser::{Resolve, WorldItem, WorldKey};

fn contract() -> (Resolve, wit_parser::PackageId) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(&dir).expect("wit/ parses");
    (resolve, package)
}

#[test]
fn package_and_version_are_the_wit_package() {
    let (resolve, package) = contract();
    let name = &resolve.packages[package].name;
    assert_eq!(format!("{}:{}", name.namespace, name.name), PACKAGE);
    assert_eq!(name.version.as_ref(), Some(&VERSION));
    assert_eq!(name.to_string(), PACKAGE_AT_VERSION);
}

#[test]
fn every_plugin_world_and_only_those() {
    let (resolve, package) = contract();
    let mut in_wit: Vec<(String, Vec<String>)> = resolve.packages[package]
        .worlds
        .iter()
        // `host` is what the host provides, not a plugin world.
        .filter(|(name, _)| name.as_str() != "host")
        .map(|(name, &id)| {
            let exports = resolve.worlds[id]
                .exports
                .iter()
                .filter_map(|(key, item)| match (key, item) {
                    (WorldKey::Interface(i), WorldItem::Interface { .. }) => {
                        resolve.interfaces[*i].name.clone()
                    }
                    (WorldKey::Name(n), _) => Some(n.clone()),
                    _ => None,
                })
                .collect();
            (name.clone(), exports)
        })
        .collect();
    in_wit.sort();
    let mut ours: Vec<(String, Vec<String>)> = World::ALL
        .iter()
        .map(|w| (w.name().to_owned(), vec![w.export_interface().to_owned()]))
        .collect();
    ours.sort();
    assert_eq!(ours, in_wit, "World::ALL against wit/worlds.wit");
}
