using System.Globalization;
using Dnm.Core.Config;
using Dnm.Core.Data;

namespace Dnm.Cluster.Hosting;

/// <summary>
/// The environment variables a `dnm node` reads: the one list of them (deployment manifests are checked
/// against <see cref="Variables"/>). Flags given on the command line override them.
/// </summary>
public static class NodeEnvironment
{
    public const string Role = "DNM_ROLE";                  // coordinator | worker | both
    public const string Seeds = "DNM_SEEDS";                // host:port,host:port
    public const string Host = "DNM_HOST";                  // name others reach this node by
    public const string BindHost = "DNM_BIND_HOST";         // local listen address
    public const string Port = "DNM_PORT";                  // Akka remoting port
    public const string DataPlanePort = "DNM_DATA_PLANE_PORT";
    public const string MinWorkers = "DNM_MIN_WORKERS";
    public const string LocalWorkers = "DNM_LOCAL_WORKERS";
    public const string Devices = "DNM_DEVICES";            // cpu | cuda:0,cuda:1
    public const string JoinTimeout = "DNM_JOIN_TIMEOUT";   // 60s, 2m, 500ms
    public const string StepTimeout = "DNM_STEP_TIMEOUT";
    public const string ChecksumEvery = "DNM_CHECKSUM_EVERY";
    public const string ClusterName = "DNM_CLUSTER_NAME";
    public const string DownAfter = "DNM_DOWN_AFTER";
    public const string AkkaLogLevel = "DNM_AKKA_LOG_LEVEL";
    public const string TlsCert = "DNM_TLS_CERT";           // PEM files; /etc/dnm/tls/tls.crt on Kubernetes
    public const string TlsKey = "DNM_TLS_KEY";
    public const string TlsCa = "DNM_TLS_CA";
    public const string StopExitCode = "DNM_STOP_EXIT_CODE";
    public const string CommitLog = "DNM_COMMIT_LOG";       // on | off
    public const string Reduction = "DNM_REDUCTION";        // workers | star
    /// <summary>Path of a JSON run config (the `dnm train` keys); read by the coordinator.</summary>
    public const string Config = "DNM_CONFIG";
    /// <summary>Port of the node's /metrics, /healthz and /readyz (read by Dnm.Node's telemetry flags); 0 turns them off.</summary>
    public const string MetricsPort = "DNM_METRICS_PORT";

    /// <summary>Every variable a node reads, including the dataset cache (DNM_DATA) that Dnm.Core reads.</summary>
    public static IReadOnlyList<string> Variables => [.. Options.Select(o => o.Variable), Config, MetricsPort, DatasetCatalog.DataDirVariable];

    /// <summary>
    /// The one table of a node's options: key (the flag is --key), environment variable, help, how to show a value
    /// (defaults come from <see cref="NodeOptions"/> itself) and how to parse one. <c>dnm node</c> makes its flags and
    /// its help from it, <see cref="Apply"/> its environment binding; nothing lists an option or its default twice.
    /// </summary>
    public static IReadOnlyList<NodeOptionDescriptor> Options { get; } =
    [
        new("role", Role, "coordinator, worker or both", "role", o => RoleName(o.Roles), (o, v, at) => o with { Roles = ParseRole(v, at) },
            Choices: ["coordinator", "worker", "both"]),
        new("seeds", Seeds, "Seed nodes host:port,... (DNS names work); none on a coordinator founds the cluster", "host:port,...",
            o => o.Seeds.Count == 0 ? "none" : string.Join(',', o.Seeds), (o, v, _) => o with { Seeds = List(v) }),
        new("host", Host, "Name other nodes reach this one by (must match their --seeds)", "name", o => o.Host, (o, v, _) => o with { Host = v }),
        new("bind-host", BindHost, "Local address to listen on", "address", o => o.BindHost, (o, v, _) => o with { BindHost = v }),
        new("port", Port, "Akka remoting port", "port", o => Show(o.Port), (o, v, at) => o with { Port = Int(at, v) }),
        new("data-plane-port", DataPlanePort, "Tensor data-plane port: the coordinator's; on a worker-only node its workers' (+i for the i-th), " +
                "where the other workers reach them; 0 = ephemeral", "port", o => Show(o.DataPlanePort),
            (o, v, at) => o with { DataPlanePort = Int(at, v) }),
        new("local-workers", LocalWorkers, "Workers in this process", "N", o => Show(o.LocalWorkers), (o, v, at) => o with { LocalWorkers = Int(at, v) }),
        new("devices", Devices, "Devices of the local workers, round-robin: cpu or cuda:0,cuda:1", "list",
            o => o.Devices.Count == 0 ? "--device" : string.Join(',', o.Devices), (o, v, _) => o with { Devices = List(v) }),
        new("min-workers", MinWorkers, "Workers the coordinator waits for before the first step", "N", o => Show(o.MinWorkers),
            (o, v, at) => o with { MinWorkers = Int(at, v) }),
        new("join-timeout", JoinTimeout, "How long to wait for the seeds and for min-workers", "duration", o => ShowDuration(o.JoinTimeout),
            (o, v, at) => o with { JoinTimeout = ParseDuration(v, at) }),
        new("step-timeout", StepTimeout, "How long a step may take before it is retried", "duration", o => ShowDuration(o.StepTimeout),
            (o, v, at) => o with { StepTimeout = ParseDuration(v, at) }),
        new("checksum-every", ChecksumEvery, "Compare replica checksums every this many steps; 0 = never", "N", o => Show(o.ChecksumEvery),
            (o, v, at) => o with { ChecksumEvery = Int(at, v) }, HasFlag: false),
        new("cluster-name", ClusterName, "Akka system name, the same on every node", "name", o => o.ClusterName, (o, v, _) => o with { ClusterName = v },
            HasFlag: false),
        new("down-after", DownAfter, "Split-brain resolver: how long a partition must be stable before the minority is downed", "duration",
            o => ShowDuration(o.DownAfter), (o, v, at) => o with { DownAfter = ParseDuration(v, at) }, HasFlag: false),
        new("tls-cert", TlsCert, "PEM certificate of this node (tls.crt); with --tls-key and --tls-ca: mutual TLS for Akka and the data plane", "file",
            o => o.TlsCert ?? "none", (o, v, _) => o with { TlsCert = v }),
        new("tls-key", TlsKey, "PEM private key of --tls-cert (tls.key)", "file", o => o.TlsKey ?? "none", (o, v, _) => o with { TlsKey = v }),
        new("tls-ca", TlsCa, "PEM certificate of the cluster's CA (ca.crt): peers must present a certificate it signed", "file",
            o => o.TlsCa ?? "none", (o, v, _) => o with { TlsCa = v }),
        new("stop-exit-code", StopExitCode, "Exit status after SIGTERM stopped the node cleanly (checkpointed; the same command resumes); " +
                "the Kubernetes Jobs set 143 so that a stopped pod is replaced, not counted as the run's success", "status",
            o => Show(o.StopExitCode), (o, v, at) => o with { StopExitCode = Int(at, v) }),
        new("commit-log", CommitLog, "Coordinator: append one line per committed step (global step, membership epoch, world size, " +
                "Adam steps) to commits.log in the run directory; for checks that no step is applied twice", "on|off",
            o => o.CommitLog ? "on" : "off", (o, v, at) => o with { CommitLog = Switch(at, v) }, Choices: ["on", "off"]),
        new("reduction", Reduction, "Coordinator: sum a world's statistics among the workers (recursive halving, where the world is a power " +
                "of two with one micro-batch block a rank; the same bits), always through the coordinator (star), or auto: among the " +
                "workers from 256 KiB of statistics, through the coordinator below", "auto|workers|star",
            o => KebabEnum.Name(o.Reduction),
            (o, v, at) => o with { Reduction = ParseReduction(v, at) }, Choices: KebabEnum.Names<Coordination.StatisticsReduction>()),
        new("akka-log-level", AkkaLogLevel, "Akka's own log level", "level", o => o.AkkaLogLevel, (o, v, _) => o with { AkkaLogLevel = v.ToUpperInvariant() },
            HasFlag: false),
    ];

    /// <summary>The process environment over <paramref name="defaults"/>.</summary>
    public static NodeOptions Read(NodeOptions? defaults = null) => Apply(defaults ?? new NodeOptions(), Environment.GetEnvironmentVariable);

    /// <summary>Each variable that <paramref name="read"/> returns (non-empty) replaces the option it names.</summary>
    public static NodeOptions Apply(NodeOptions o, Func<string, string?> read)
    {
        foreach (var option in Options)
            if (read(option.Variable) is { Length: > 0 } value)
                o = option.Parse(o, value.Trim(), option.Variable);
        return o;
    }

    /// <summary>The run config named by DNM_CONFIG, or null.</summary>
    public static DnmConfig? ReadConfig(Func<string, string?>? read = null)
    {
        var path = (read ?? Environment.GetEnvironmentVariable)(Config);
        if (string.IsNullOrWhiteSpace(path)) return null;
        if (!File.Exists(path)) throw new ConfigException($"{Config}={path}: no such file");
        return DnmConfig.FromJson(File.ReadAllText(path), path);
    }

    public static NodeRoles ParseRole(string text, string what = "role") => text.Trim().ToLowerInvariant() switch
    {
        "coordinator" => NodeRoles.Coordinator,
        "worker" => NodeRoles.Worker,
        "both" => NodeRoles.Both,
        _ => throw new ConfigException($"{(what == "role" ? "" : $"{what}: ")}role must be coordinator, worker or both, got '{text}'"),
    };

    private static string RoleName(NodeRoles roles) => roles == NodeRoles.Both ? "both" : roles.ToString().ToLowerInvariant();

    private static string Show(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string ShowDuration(TimeSpan t) => $"{t.TotalSeconds.ToString(CultureInfo.InvariantCulture)}s";

    /// <summary>"60s", "2m", "1h", "500ms", or a plain number of seconds.</summary>
    public static TimeSpan ParseDuration(string text, string what)
    {
        var t = text.Trim().ToLowerInvariant();
        var (number, scale) = t.EndsWith("ms", StringComparison.Ordinal) ? (t[..^2], 0.001)
            : t.EndsWith('s') ? (t[..^1], 1.0)
            : t.EndsWith('m') ? (t[..^1], 60.0)
            : t.EndsWith('h') ? (t[..^1], 3600.0)
            : (t, 1.0);
        if (double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0 && !double.IsInfinity(v))
            return TimeSpan.FromSeconds(v * scale);
        throw new ConfigException($"{what} '{text}' is not a duration (for example 60s, 2m or 500ms)");
    }

    private static IReadOnlyList<string> List(string text) =>
        text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static Coordination.StatisticsReduction ParseReduction(string text, string name) =>
        KebabEnum.TryParse<Coordination.StatisticsReduction>(text.Trim().ToLowerInvariant(), out var reduction)
            ? reduction
            : throw new ConfigException(name.StartsWith("--", StringComparison.Ordinal) ? $"{name} '{text}' must be auto, workers or star" : $"{name}={text} must be auto, workers or star");

    private static bool Switch(string name, string text) => text.Trim().ToLowerInvariant() switch
    {
        "on" or "true" or "1" => true,
        "off" or "false" or "0" => false,
        _ => throw new ConfigException(name.StartsWith("--", StringComparison.Ordinal) ? $"{name} '{text}' must be on or off" : $"{name}={text} must be on or off"),
    };

    private static int Int(string name, string text) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new ConfigException(name.StartsWith("--", StringComparison.Ordinal) ? $"{name} '{text}' is not an integer" : $"{name}={text} is not an integer");
}

/// <summary>
/// One option of <see cref="NodeOptions"/>: its key (the flag <see cref="Flag"/>), environment variable, help, how to show a
/// value and how to parse one (<c>at</c> names where the text came from, for errors). <paramref name="HasFlag"/> false:
/// environment only (settings a deployment sets once).
/// </summary>
public sealed record NodeOptionDescriptor(string Key, string Variable, string Help, string HelpName, Func<NodeOptions, string> Show,
    Func<NodeOptions, string, string, NodeOptions> Parse, bool HasFlag = true, IReadOnlyList<string>? Choices = null)
{
    public string Flag => "--" + Key;
}
