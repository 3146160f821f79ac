use clap::Parser;
use pigeon::app::{self, App};
use pigeon::cli::{Cli, Command, OvhCredentialsCommand, UserCommand};
use pigeon::config::Config;
use pigeon::services::{accounts, ovh, quotas};

// A request allocates and frees many small buffers on one thread and another; glibc's malloc
// showed as a tenth of the CPU under load, mimalloc costs a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The phone number library logs the numbers it parses, in clear, at trace level: never kept.
    let quiet_numbers = "rlibphonenumber=off".parse()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into())
                .add_directive(quiet_numbers),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // The agent runs on the device: no database, no server config.
    if let Command::Agent(args) = cli.command {
        return agent(args).await;
    }
    let serve_args = match &cli.command {
        Command::Serve(args) => Some(args),
        _ => None,
    };
    let config = Config::load(cli.config.as_deref(), &cli.common, serve_args)?;
    let app = App::open(config).await?;
    match cli.command {
        Command::Serve(_) => serve(app).await,
        Command::Migrate => {
            println!("database is up to date");
            Ok(())
        }
        Command::User(command) => user(&app, command).await,
        Command::OvhCredentials(OvhCredentialsCommand::Create { email }) => {
            let c = ovh::create_credentials_for(&app, &email).await?;
            println!("application_key={}", c.application_key);
            println!("application_secret={}", c.application_secret);
            println!("consumer_key={}", c.consumer_key);
            Ok(())
        }
        Command::Agent(_) => unreachable!("the agent returns before the config is loaded"),
    }
}

async fn serve(app: App) -> anyhow::Result<()> {
    if let Some(admin) = accounts::create_first_admin(&app).await? {
        println!("Created the first account; these credentials are shown only once:");
        println!("  email:    {}", admin.email);
        println!(
            "  password: {}",
            admin.password.as_deref().unwrap_or_default()
        );
        println!("  api key:  {}", admin.api_key);
    }
    let listener = tokio::net::TcpListener::bind(&app.config.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, public_url = %app.public_base, "pigeon is serving");
    app::run(std::sync::Arc::new(app), listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn agent(args: pigeon::cli::AgentArgs) -> anyhow::Result<()> {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        stop.cancel();
        // A second signal does not wait for the jobs being sent.
        shutdown_signal().await;
        std::process::exit(130);
    });
    pigeon::agent::client::main(args, shutdown).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

async fn user(app: &App, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            email,
            admin,
            password,
            api_key,
        } => {
            let created = accounts::create_user(app, &email, admin, password, api_key).await?;
            if let Some(password) = created.password {
                eprintln!("password: {password}");
            }
            println!("{}", created.api_key);
        }
        UserCommand::List => {
            for u in pigeon_store::users::list(&app.store).await? {
                let role = if u.admin { "admin" } else { "user" };
                println!("{}\t{}\t{}\t{}", u.id, u.email, role, u.status);
            }
        }
        UserCommand::Suspend { email } => accounts::set_status(app, &email, "suspended").await?,
        UserCommand::Activate { email } => accounts::set_status(app, &email, "active").await?,
        UserCommand::RotateKey { email } => {
            println!("{}", accounts::rotate_key(app, &email).await?)
        }
        UserCommand::Quota {
            email,
            credit,
            additional,
            interval,
            auto_renew,
            report_unused,
            report_unused_additional,
        } => {
            let input = quotas::QuotaInput {
                credit,
                additional,
                interval,
                auto_renew,
                report_unused,
                report_unused_additional,
            };
            quotas::set(app, &email, &input).await?
        }
        UserCommand::Set { email, name, value } => {
            accounts::set_setting(app, &email, &name, &value).await?
        }
    }
    Ok(())
}
