//! `livegate-faultproxy`: a fault-injecting loopback TCP proxy driven by
//! commands on stdin. See `tests/faultproxy/README.md`.

mod args;
mod conn;
mod control;
mod head;
mod state;
mod tls;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::state::State;

fn main() {
    let args = match args::parse(std::env::args_os().skip(1)) {
        Ok(args::Parsed::Run(args)) => args,
        Ok(args::Parsed::Help) => {
            println!("{}", args::USAGE);
            std::process::exit(0);
        }
        Err(why) => {
            eprintln!("livegate-faultproxy: {why}\n\n{}", args::USAGE);
            std::process::exit(2);
        }
    };
    let code = match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("livegate-faultproxy: {e:#}");
            1
        }
    };
    // Exit without waiting for the runtime: the blocking stdin reader and
    // open connections must not keep the process alive.
    std::process::exit(code);
}

fn run(args: args::Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async {
        let public = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let local = public.local_addr().context("reading the listen address")?;
        let listener = match &args.tls_ca_out {
            None => public,
            Some(ca_out) => {
                let acceptor = tls::acceptor(ca_out)?;
                let inner = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
                    .await
                    .context("listening on loopback for the TLS terminator")?;
                let inner_addr = inner.local_addr().context("reading the listen address")?;
                tokio::spawn(tls::serve(public, inner_addr, acceptor));
                inner
            }
        };
        let state = State::new(args.upstream);

        let mut out = tokio::io::stdout();
        out.write_all(format!("faultproxy listening on {local}\n").as_bytes())
            .await
            .context("writing to stdout")?;
        out.flush().await.context("writing to stdout")?;

        tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        control::run(state, tokio::io::stdin(), &mut out)
            .await
            .context("control channel")?;
        Ok(())
    })
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let sock = match listener.accept().await {
            Ok((sock, _peer)) => sock,
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                eprintln!("faultproxy: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        state.stats.accepted.fetch_add(1, Ordering::SeqCst);
        if state.refuse_all.load(Ordering::SeqCst) {
            state.stats.refused_all.fetch_add(1, Ordering::SeqCst);
            drop(sock);
            continue;
        }
        let (guard, kill) = state.register();
        tokio::spawn(conn::handle(Arc::clone(&state), sock, guard, kill));
    }
}
