//! The command tree, flag for flag as Keptn's CLI (`keptn <verb> <noun>`), plus `keptn approve`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "keptn",
    version,
    about = "The Keptn command line, for Keelson and Keptn 1.x",
    disable_version_flag = true
)]
pub struct Cli {
    /// More output (the API calls made).
    #[arg(short = 'v', long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Only errors.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    /// Accepted for compatibility; Keelson's CLI keeps one set of credentials.
    #[arg(short = 'n', long, global = true, default_value = "keptn", hide = true)]
    pub namespace: String,
    /// Answers yes to questions.
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,
    /// Keptn's CLI settings file, which Keelson's CLI does not use (refused with a message).
    #[arg(long = "config-file", global = true, hide = true)]
    pub config_file: Option<PathBuf>,
    /// Keptn's dry-run mode, which Keelson's CLI does not have.
    #[arg(long, global = true, hide = true)]
    pub mock: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Checks an endpoint and API token and stores them in ~/.keptn (mode 0600).
    Auth(AuthArgs),
    /// Checks the stored endpoint and token.
    Status,
    /// Prints the CLI's version and the API's.
    Version,
    /// Creates a project, a service or a secret.
    #[command(subcommand)]
    Create(Create),
    /// Updates a project's git upstream or a secret.
    #[command(subcommand)]
    Update(Update),
    /// Deletes a project, a service or a secret.
    #[command(subcommand)]
    Delete(Delete),
    /// Lists projects, stages, services, events or secrets.
    #[command(subcommand)]
    Get(Get),
    /// Adds a file to a project, stage or service.
    #[command(name = "add-resource")]
    AddResource(AddResourceArgs),
    /// Triggers a delivery, an evaluation or any sequence.
    #[command(subcommand)]
    Trigger(Trigger),
    /// Sends an event.
    #[command(subcommand)]
    Send(Send),
    /// Approves (or declines) an open approval.
    Approve(ApproveArgs),
    /// Aborts a running sequence.
    #[command(subcommand)]
    Abort(SequenceNoun),
    /// Pauses a running sequence.
    #[command(subcommand)]
    Pause(SequenceNoun),
    /// Resumes a paused sequence.
    #[command(subcommand)]
    Resume(SequenceNoun),
    /// Configures monitoring (the SLI provider) of a project.
    #[command(subcommand)]
    Configure(Configure),
    /// Prints a shell completion script.
    ///
    /// Example: `source <(keptn completion bash)`
    Completion(CompletionArgs),
    /// Keptn's installer; Keelson needs none (it is one binary).
    #[command(hide = true, disable_help_flag = true)]
    Install(IgnoredArgs),
    /// Keptn's upgrade; Keelson is upgraded by replacing its binary.
    #[command(hide = true, disable_help_flag = true)]
    Upgrade(IgnoredArgs),
    /// Keptn's uninstaller; Keelson needs none.
    #[command(hide = true, disable_help_flag = true)]
    Uninstall(IgnoredArgs),
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// Whatever Keptn's own flags a script passes to a command Keelson does not need.
#[derive(Args, Debug)]
pub struct IgnoredArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AuthArgs {
    /// The API endpoint, e.g. http://127.0.0.1:8080 (`/api` is added when the path is empty).
    #[arg(short = 'e', long, env = "KEPTN_ENDPOINT")]
    pub endpoint: Option<String>,
    /// The API token (x-token).
    #[arg(short = 'a', long = "api-token", env = "KEPTN_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Prints the stored endpoint and token instead.
    #[arg(short = 'c', long)]
    pub export: bool,
    /// Accepted for compatibility (there are no namespaces to list).
    #[arg(short = 'i', long = "skip-namespace-listing", hide = true)]
    pub skip_namespace_listing: bool,
}

#[derive(Subcommand, Debug)]
pub enum Create {
    /// Creates a project from a shipyard file, optionally with a git upstream.
    Project(Box<CreateProjectArgs>),
    /// Creates a service in every stage of a project.
    Service(ServiceArgs),
    /// Creates a secret (values from --from-literal).
    Secret(SecretArgs),
}

#[derive(Subcommand, Debug)]
pub enum Update {
    /// Connects a project to a git upstream or changes its credentials.
    Project(Box<UpdateProjectArgs>),
    /// Replaces the values of a secret.
    Secret(SecretArgs),
}

#[derive(Subcommand, Debug)]
pub enum Delete {
    /// Deletes a project (its git upstream is left as it is).
    Project(NameArg),
    /// Deletes a service and its files from every stage.
    Service(ServiceArgs),
    /// Deletes a secret.
    Secret(DeleteSecretArgs),
}

#[derive(Args, Debug)]
pub struct NameArg {
    /// The name.
    pub name: String,
}

#[derive(Args, Debug, Default)]
pub struct GitArgs {
    /// The git repository the project is kept in sync with.
    #[arg(short = 'r', long = "git-remote-url")]
    pub git_remote_url: Option<String>,
    /// The git user.
    #[arg(short = 'u', long = "git-user")]
    pub git_user: Option<String>,
    /// The git token (https remotes).
    #[arg(short = 't', long = "git-token")]
    pub git_token: Option<String>,
    /// A file with the SSH private key (for ssh:// remotes).
    #[arg(short = 'k', long = "git-private-key")]
    pub git_private_key: Option<PathBuf>,
    /// The passphrase of the SSH private key.
    #[arg(short = 'l', long = "git-private-key-pass")]
    pub git_private_key_pass: Option<String>,
    /// A proxy for https remotes, host:port.
    #[arg(short = 'p', long = "git-proxy-url")]
    pub git_proxy_url: Option<String>,
    /// The proxy scheme: http or https.
    #[arg(short = 'j', long = "git-proxy-scheme")]
    pub git_proxy_scheme: Option<String>,
    /// The proxy user.
    #[arg(short = 'w', long = "git-proxy-user")]
    pub git_proxy_user: Option<String>,
    /// The proxy password.
    #[arg(short = 'e', long = "git-proxy-password")]
    pub git_proxy_password: Option<String>,
    /// A file with the PEM certificate of the git server.
    #[arg(short = 'g', long = "git-pem-certificate")]
    pub git_pem_certificate: Option<PathBuf>,
    /// Skips checking the git server's TLS certificate.
    #[arg(short = 'x', long = "insecure-skip-tls")]
    pub insecure_skip_tls: bool,
}

#[derive(Args, Debug)]
pub struct CreateProjectArgs {
    /// The project name.
    pub name: String,
    /// The shipyard file.
    #[arg(short = 's', long)]
    pub shipyard: PathBuf,
    #[command(flatten)]
    pub git: GitArgs,
}

#[derive(Args, Debug)]
pub struct UpdateProjectArgs {
    /// The project name.
    pub name: String,
    #[command(flatten)]
    pub git: GitArgs,
}

#[derive(Args, Debug)]
pub struct ServiceArgs {
    /// The service name.
    pub name: String,
    /// The project.
    #[arg(short = 'p', long)]
    pub project: String,
}

#[derive(Args, Debug)]
pub struct SecretArgs {
    /// The secret name.
    pub name: String,
    /// A key and its value, `key=value` (repeatable).
    #[arg(long = "from-literal", value_name = "KEY=VALUE")]
    pub from_literal: Vec<String>,
    /// The scope (keptn-webhook-service for webhooks).
    #[arg(short = 's', long, default_value = "keptn-default")]
    pub scope: String,
}

#[derive(Args, Debug)]
pub struct DeleteSecretArgs {
    /// The secret name.
    pub name: String,
    /// The scope.
    #[arg(short = 's', long, default_value = "keptn-default")]
    pub scope: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

#[derive(Subcommand, Debug)]
pub enum Get {
    /// Lists the projects, or shows one.
    #[command(alias = "projects")]
    Project(GetProjectArgs),
    /// Lists a project's stages, or shows one.
    #[command(alias = "stages")]
    Stage(GetStageArgs),
    /// Lists a project's services, or shows one.
    #[command(alias = "services")]
    Service(GetServiceArgs),
    /// Lists events of a type, newest first.
    #[command(alias = "events")]
    Event(GetEventArgs),
    /// Lists the secrets: names, scopes and keys (never values).
    #[command(alias = "secrets")]
    Secret(OutputArg),
}

#[derive(Args, Debug)]
pub struct OutputArg {
    /// Output format instead of a table.
    #[arg(short = 'o', long)]
    pub output: Option<Format>,
}

#[derive(Args, Debug)]
pub struct GetProjectArgs {
    /// Only this project.
    pub name: Option<String>,
    #[command(flatten)]
    pub output: OutputArg,
}

#[derive(Args, Debug)]
pub struct GetStageArgs {
    /// Only this stage.
    pub name: Option<String>,
    /// The project.
    #[arg(long)]
    pub project: String,
    #[command(flatten)]
    pub output: OutputArg,
}

#[derive(Args, Debug)]
pub struct GetServiceArgs {
    /// Only this service.
    pub name: Option<String>,
    /// The project.
    #[arg(long)]
    pub project: String,
    #[command(flatten)]
    pub output: OutputArg,
}

#[derive(Args, Debug)]
pub struct GetEventArgs {
    /// The event type, e.g. `evaluation.finished` or `sh.keptn.event.evaluation.finished`.
    pub event_type: String,
    /// The project.
    #[arg(short = 'p', long)]
    pub project: Option<String>,
    /// The stage.
    #[arg(short = 's', long)]
    pub stage: Option<String>,
    /// The service.
    #[arg(long)]
    pub service: Option<String>,
    /// Only events of this Keptn context.
    #[arg(long = "keptn-context")]
    pub keptn_context: Option<String>,
    /// Accepted for compatibility.
    #[arg(long = "page-size", hide = true)]
    pub page_size: Option<u32>,
    /// Pages of 20 events to read at most.
    #[arg(long = "num-of-pages", default_value_t = 100)]
    pub num_of_pages: u32,
    #[command(flatten)]
    pub output: OutputArg,
}

#[derive(Args, Debug)]
pub struct AddResourceArgs {
    /// The project.
    #[arg(short = 'p', long)]
    pub project: String,
    /// The stage.
    #[arg(short = 's', long, conflicts_with = "all_stages")]
    pub stage: Option<String>,
    /// Adds the file to every stage.
    #[arg(long = "all-stages")]
    pub all_stages: bool,
    /// The service.
    #[arg(long)]
    pub service: Option<String>,
    /// The local file.
    #[arg(short = 'r', long)]
    pub resource: PathBuf,
    /// Where it is stored (default: the file's path as given).
    #[arg(long = "resourceUri")]
    pub resource_uri: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    /// Follows the sequence's events until it finishes; the exit code tells its result.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Longest time to watch, in seconds.
    #[arg(long = "watch-time", default_value_t = 600)]
    pub watch_time: u64,
    /// Prints the Keptn context as JSON or YAML instead of a sentence.
    #[arg(short = 'o', long)]
    pub output: Option<Format>,
}

#[derive(Subcommand, Debug)]
pub enum Trigger {
    /// Triggers a delivery of an image.
    ///
    /// Example: `keptn trigger delivery --project sockshop --service carts --image docker.io/keptn/carts:0.13.1 --watch`
    Delivery(TriggerDeliveryArgs),
    /// Triggers a quality-gate evaluation.
    ///
    /// Example: `keptn trigger evaluation --project sockshop --stage dev --service carts --timeframe 5m --watch`
    Evaluation(TriggerEvaluationArgs),
    /// Triggers any sequence of the shipyard.
    ///
    /// Example: `keptn trigger sequence remediation --project sockshop --stage prod --service carts`
    Sequence(TriggerSequenceArgs),
}

#[derive(Args, Debug)]
pub struct TriggerDeliveryArgs {
    /// The project.
    #[arg(long)]
    pub project: String,
    /// The service.
    #[arg(long)]
    pub service: String,
    /// The image to deliver, `IMAGE:TAG` (not checked against any registry).
    #[arg(long)]
    pub image: String,
    /// Default: the shipyard's first stage.
    #[arg(long)]
    pub stage: Option<String>,
    /// The sequence to trigger.
    #[arg(long, default_value = "delivery")]
    pub sequence: String,
    /// Labels, `key=value,...`.
    #[arg(short = 'l', long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Values merged into `configurationChange.values`, `a.b=c,...`.
    #[arg(long, value_delimiter = ',')]
    pub values: Vec<String>,
    #[command(flatten)]
    pub watch: WatchArgs,
}

#[derive(Args, Debug)]
pub struct TriggerEvaluationArgs {
    /// The project.
    #[arg(long)]
    pub project: String,
    /// The stage.
    #[arg(long)]
    pub stage: String,
    /// The service.
    #[arg(long)]
    pub service: String,
    /// How far back from now (or from --start), e.g. 5m.
    #[arg(long, conflicts_with = "end")]
    pub timeframe: Option<String>,
    /// Start of the evaluation window (2006-01-02T15:04:05).
    #[arg(long)]
    pub start: Option<String>,
    /// End of the evaluation window (with --start).
    #[arg(long)]
    pub end: Option<String>,
    /// Labels, `key=value,...`.
    #[arg(short = 'l', long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// The git commit of the SLO files to use.
    #[arg(long = "git-commit-id")]
    pub git_commit_id: Option<String>,
    #[command(flatten)]
    pub watch: WatchArgs,
}

#[derive(Args, Debug)]
pub struct TriggerSequenceArgs {
    /// The sequence name.
    pub sequence: String,
    /// The project.
    #[arg(long)]
    pub project: String,
    /// The stage.
    #[arg(long)]
    pub stage: String,
    /// The service.
    #[arg(long)]
    pub service: String,
    /// Labels, `key=value,...`.
    #[arg(short = 'l', long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// Data merged into the event, `a.b=c,...`.
    #[arg(short = 'd', long, value_delimiter = ',')]
    pub data: Vec<String>,
    #[command(flatten)]
    pub watch: WatchArgs,
}

#[derive(Subcommand, Debug)]
pub enum Send {
    /// Sends a CloudEvent from a file, or (with a type) a prepared event such as approval.finished.
    Event(SendEventArgs),
}

#[derive(Args, Debug)]
pub struct SendEventArgs {
    /// `approval.finished` approves an open approval (see keptn approve).
    pub kind: Option<String>,
    /// A file with a CloudEvent (JSON).
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub approval: ApproveArgs,
}

#[derive(Args, Debug, Default)]
pub struct ApproveArgs {
    /// The project.
    #[arg(long)]
    pub project: Option<String>,
    /// The stage.
    #[arg(long)]
    pub stage: Option<String>,
    /// The service.
    #[arg(long)]
    pub service: Option<String>,
    /// The id of the approval.triggered event.
    #[arg(long)]
    pub id: Option<String>,
    /// Declines instead of approving.
    #[arg(long)]
    pub decline: bool,
    /// Labels, `key=value,...`.
    #[arg(short = 'l', long, value_delimiter = ',')]
    pub labels: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum SequenceNoun {
    /// The sequence of a Keptn context (all its stages, or --stage).
    Sequence(SequenceControlArgs),
}

#[derive(Args, Debug)]
pub struct SequenceControlArgs {
    /// The project.
    #[arg(short = 'p', long)]
    pub project: String,
    /// The Keptn context of the sequence.
    #[arg(short = 'c', long = "keptn-context")]
    pub keptn_context: String,
    /// Only this stage.
    #[arg(short = 's', long)]
    pub stage: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Configure {
    /// Sets the SLI provider of a project.
    ///
    /// Example: `keptn configure monitoring prometheus --project sockshop --service carts`
    Monitoring(ConfigureMonitoringArgs),
    /// Keptn's Bridge exposure and credentials; Keelson serves its Bridge with the API.
    #[command(hide = true, disable_help_flag = true)]
    Bridge(IgnoredArgs),
}

#[derive(Args, Debug)]
pub struct ConfigureMonitoringArgs {
    /// The SLI provider, e.g. prometheus or dynatrace.
    pub provider: String,
    /// The project.
    #[arg(short = 'p', long)]
    pub project: String,
    /// The service.
    #[arg(short = 's', long)]
    pub service: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_command_tree_is_consistent() {
        // Catches clashing short flags and names in every subcommand.
        super::Cli::command().debug_assert();
    }

    /// Every visible command and flag says what it is for in `--help`.
    #[test]
    fn every_command_and_flag_has_a_help_line() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for argument in command.get_arguments() {
                let builtin = matches!(argument.get_id().as_str(), "help" | "version");
                if !argument.is_hide_set() && !builtin && argument.get_help().is_none() {
                    missing.push(format!("{path} --{}", argument.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_name() != "help" && !sub.is_hide_set() && sub.get_about().is_none() {
                    missing.push(sub_path.clone());
                }
                walk(sub, &sub_path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "keptn", &mut missing);
        assert!(missing.is_empty(), "no help line:\n{}", missing.join("\n"));
    }
}
