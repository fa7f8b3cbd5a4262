//! A network namespace of the test's own, joined to this host by a veth pair: what a
//! booted node (tests/e2e/boot.rs) sees as its network. Only the two ends of the pair
//! talk: the namespace has no default route, and the host does not forward for it, so
//! nothing in it reaches any other network, and in particular never the host's own
//! 169.254.169.254: the namespace answers that address itself ([`NetNs::bind_inside`]).
//!
//! Needs root and `ip` (iproute2). Every name carries the test's process id, and `Drop`
//! deletes the namespace (which deletes the pair), so runs in parallel do not collide.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Command;

pub struct NetNs {
    pub name: String,
    /// This host's end of the pair, an address only the namespace routes to.
    pub host_ip: Ipv4Addr,
    /// The namespace's end.
    pub inside_ip: Ipv4Addr,
}

/// `ip ARGS`, failing with its error text.
fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())))
    }
}

impl NetNs {
    /// Creates namespace `ff<tag><pid>` with veth `vh<tag><pid>` (host, `10.<a>.<b>.1/30`)
    /// to `vn<tag><pid>` (inside, `.2`); `subnet` (0–63) picks `<b>` so that several
    /// namespaces of one test get distinct /30s.
    pub fn create(tag: &str, subnet: u8) -> io::Result<NetNs> {
        let pid = std::process::id();
        let name = format!("ff{tag}{pid}");
        // 10.200-249.x.y: the pid spreads parallel test processes over /24s.
        let (a, b) = (200 + (pid % 50) as u8, (pid / 50 % 4) as u8 * 64 + subnet % 64);
        let net = NetNs { name, host_ip: Ipv4Addr::new(10, a, b, 1), inside_ip: Ipv4Addr::new(10, a, b, 2) };
        let (host_end, inside_end) = (format!("vh{tag}{pid}"), format!("vn{tag}{pid}"));
        // A namespace left by a killed run of this pid would make `add` fail.
        let _ = ip(&["netns", "del", &net.name]);
        ip(&["netns", "add", &net.name])?;
        let set_up = || -> io::Result<()> {
            ip(&["link", "add", &host_end, "type", "veth", "peer", "name", &inside_end, "netns", &net.name])?;
            ip(&["addr", "add", &format!("{}/30", net.host_ip), "dev", &host_end])?;
            ip(&["link", "set", &host_end, "up"])?;
            let n = net.name.as_str();
            ip(&["-n", n, "addr", "add", &format!("{}/30", net.inside_ip), "dev", &inside_end])?;
            ip(&["-n", n, "link", "set", &inside_end, "up"])?;
            ip(&["-n", n, "link", "set", "lo", "up"])
        };
        set_up()?;
        Ok(net)
    }

    /// Lets the namespace reach `host_ip`, an address of this host on another test
    /// namespace's pair (one server for several namespaces), through its own pair.
    pub fn route_to(&self, host_ip: Ipv4Addr) -> io::Result<()> {
        let inside_end = format!("vn{}", &self.name[2..]);
        ip(&["-n", &self.name, "route", "add", &format!("{host_ip}/32"), "dev", &inside_end])
    }

    /// `/run/netns/<name>`, what `systemd-nspawn --network-namespace-path=` takes.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// A TCP listener on `ip:port` inside the namespace (the address is added to its
    /// loopback device first, so it is local there and nowhere else). The socket belongs
    /// to the namespace for good, while this process serves it from the host: a thread
    /// joins the namespace only to create it, then ends.
    pub fn bind_inside(&self, ip_addr: Ipv4Addr, port: u16) -> io::Result<TcpListener> {
        let _ = ip(&["-n", &self.name, "addr", "add", &format!("{ip_addr}/32"), "dev", "lo"]);
        let netns = std::fs::File::open(self.path())?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                    TcpListener::bind(SocketAddr::from((ip_addr, port)))
                })
                .join()
                .map_err(|_| io::Error::other("the thread binding inside the namespace panicked"))?
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace destroys the inside end, which takes the host end along.
        let _ = ip(&["netns", "del", &self.name]);
    }
}
