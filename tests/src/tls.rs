//! Test certificates made with the `openssl` command: a CA, a server certificate for
//! `localhost`/`127.0.0.1` signed by it, a client certificate, and an unrelated CA that signed
//! nothing (for verification failures).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{HarnessError, Result};
use crate::process::TestDir;

/// PEM files in a temporary directory (kept alive by the value).
#[derive(Debug)]
pub struct TestCerts {
    dir: TestDir,
}

impl TestCerts {
    /// Generates the files (RSA 2048, valid for a day).
    pub fn generate() -> Result<Self> {
        let dir = TestDir::new("certs")?;
        let d = dir.path();
        let ext = d.join("server.ext");
        std::fs::write(
            &ext,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|e| HarnessError::Command {
            what: "write server.ext".into(),
            detail: e.to_string(),
        })?;
        let p = |f: &str| d.join(f).display().to_string();
        for ca in ["ca", "other-ca"] {
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    &format!("/CN=cdc test {ca}"),
                    "-keyout",
                    &p(&format!("{ca}.key")),
                    "-out",
                    &p(&format!("{ca}.pem")),
                ],
            )?;
        }
        for (name, ext_file) in [("server", Some(&ext)), ("client", None)] {
            openssl(
                d,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    &format!(
                        "/CN={}",
                        if name == "server" {
                            "localhost"
                        } else {
                            "cdc client"
                        }
                    ),
                    "-keyout",
                    &p(&format!("{name}.key")),
                    "-out",
                    &p(&format!("{name}.csr")),
                ],
            )?;
            let mut args = vec![
                "x509".to_string(),
                "-req".into(),
                "-days".into(),
                "1".into(),
                "-in".into(),
                p(&format!("{name}.csr")),
                "-CA".into(),
                p("ca.pem"),
                "-CAkey".into(),
                p("ca.key"),
                "-CAcreateserial".into(),
                "-out".into(),
                p(&format!("{name}.pem")),
            ];
            if let Some(e) = ext_file {
                args.push("-extfile".into());
                args.push(e.display().to_string());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            openssl(d, &args)?;
        }
        Ok(Self { dir })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The CA that signed the server and client certificates.
    pub fn ca(&self) -> PathBuf {
        self.file("ca.pem")
    }

    /// A CA that signed nothing here.
    pub fn other_ca(&self) -> PathBuf {
        self.file("other-ca.pem")
    }

    /// The server certificate (`localhost`, `127.0.0.1`).
    pub fn server_cert(&self) -> PathBuf {
        self.file("server.pem")
    }

    /// The server's key.
    pub fn server_key(&self) -> PathBuf {
        self.file("server.key")
    }

    /// A client certificate signed by [`TestCerts::ca`].
    pub fn client_cert(&self) -> PathBuf {
        self.file("client.pem")
    }

    /// The client's key.
    pub fn client_key(&self) -> PathBuf {
        self.file("client.key")
    }

    /// `mariadbd` arguments that turn TLS on with these files.
    pub fn mariadb_args(&self) -> Vec<String> {
        vec![
            format!("--ssl-ca={}", self.ca().display()),
            format!("--ssl-cert={}", self.server_cert().display()),
            format!("--ssl-key={}", self.server_key().display()),
        ]
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| HarnessError::Command {
            what: "openssl (apt-get install openssl)".into(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(HarnessError::Command {
            what: format!("openssl {}", args.join(" ")),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}
