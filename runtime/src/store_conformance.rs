//! One conformance suite for every cluster-store backend: a local directory in unit
//! tests, S3 (moto) in the end-to-end tests. Panics naming the broken rule.

use crate::location::Location;
use crate::store::{self, Store};

pub async fn run(loc: Location) {
    // The suite opens no other location: the connections are never used.
    let s = Store { loc: loc.clone(), conn: crate::Connections::from_env() };
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct V {
        n: u32,
    }
    assert_eq!(s.get_json::<V>("conf/missing.json").await.unwrap(), None, "a missing key reads as None");
    assert!(!s.exists("conf/missing.json").await.unwrap());
    s.put_json("conf/a.json", &V { n: 1 }).await.unwrap();
    assert_eq!(s.get_json::<V>("conf/a.json").await.unwrap(), Some(V { n: 1 }));
    s.put_json("conf/a.json", &V { n: 2 }).await.unwrap();
    assert_eq!(s.get_json::<V>("conf/a.json").await.unwrap(), Some(V { n: 2 }), "put overwrites");

    assert!(s.create_json("conf/done/t1.json", &V { n: 1 }).await.unwrap(), "the first create wins");
    assert!(!s.create_json("conf/done/t1.json", &V { n: 9 }).await.unwrap(), "a second create is refused");
    assert_eq!(s.get_json::<V>("conf/done/t1.json").await.unwrap(), Some(V { n: 1 }), "and changes nothing");

    s.put_json("conf/done/t2.json", &V { n: 2 }).await.unwrap();
    assert_eq!(s.list("conf/done/").await.unwrap(), vec!["conf/done/t1.json", "conf/done/t2.json"]);
    assert_eq!(s.list("conf/nothing/").await.unwrap(), Vec::<String>::new());

    // A staged file uploads whole, in parts (bigger than one part).
    let dir = tempfile_dir();
    let file = dir.join("big.bin");
    let data: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let n = store::upload_file(&loc, "conf/out/big.bin", &file).await.unwrap();
    assert_eq!(n, data.len() as u64);
    use object_store::ObjectStoreExt;
    let got = loc.store.get(&loc.key("conf/out/big.bin")).await.unwrap().bytes().await.unwrap();
    assert!(got.as_ref() == data.as_slice(), "uploaded bytes are identical");

    for k in s.list("conf/").await.unwrap() {
        s.delete(&k).await.unwrap();
    }
    s.delete("conf/never-existed").await.unwrap();
    assert!(s.list("conf/").await.unwrap().is_empty(), "delete removes");
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("fleetform-conf-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn local_directory_conforms() {
        let d = std::env::temp_dir().join(format!("fleetform-store-{}", uuid::Uuid::new_v4()));
        let loc = crate::location::Location::open(&crate::Connections::from_env(), d.to_str().unwrap()).await.unwrap();
        super::run(loc).await;
        let _ = std::fs::remove_dir_all(d);
    }
}
