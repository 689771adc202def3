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
    /// <summary>Path of a JSON run config (the `dnm train` keys); read by the coordinator.</summary>
    public const string Config = "DNM_CONFIG";
    /// <summary>Port of the node's /metrics, /healthz and /readyz (read by Dnm.Node's telemetry flags); 0 turns them off.</summary>
    public const string MetricsPort = "DNM_METRICS_PORT";

    /// <summary>Every variable a node reads, including the dataset cache (DNM_DATA) that Dnm.Core reads.</summary>
    public static IReadOnlyList<string> Variables { get; } =
    [
        Role, Seeds, Host, BindHost, Port, DataPlanePort, MinWorkers, LocalWorkers, Devices, JoinTimeout, StepTimeout,
        ChecksumEvery, ClusterName, DownAfter, AkkaLogLevel, Config, MetricsPort, DatasetCatalog.DataDirVariable,
    ];

    /// <summary>The process environment over <paramref name="defaults"/>.</summary>
    public static NodeOptions Read(NodeOptions? defaults = null) => Apply(defaults ?? new NodeOptions(), Environment.GetEnvironmentVariable);

    /// <summary>Each variable that <paramref name="read"/> returns (non-empty) replaces the option it names.</summary>
    public static NodeOptions Apply(NodeOptions o, Func<string, string?> read)
    {
        string? Get(string name) => read(name) is { Length: > 0 } v ? v.Trim() : null;
        if (Get(Role) is { } role) o = o with { Roles = ParseRole(role) };
        if (Get(Seeds) is { } seeds) o = o with { Seeds = List(seeds) };
        if (Get(Host) is { } host) o = o with { Host = host };
        if (Get(BindHost) is { } bind) o = o with { BindHost = bind };
        if (Get(Port) is { } port) o = o with { Port = Int(Port, port) };
        if (Get(DataPlanePort) is { } dp) o = o with { DataPlanePort = Int(DataPlanePort, dp) };
        if (Get(MinWorkers) is { } min) o = o with { MinWorkers = Int(MinWorkers, min) };
        if (Get(LocalWorkers) is { } local) o = o with { LocalWorkers = Int(LocalWorkers, local) };
        if (Get(Devices) is { } devices) o = o with { Devices = List(devices) };
        if (Get(JoinTimeout) is { } jt) o = o with { JoinTimeout = Duration(JoinTimeout, jt) };
        if (Get(StepTimeout) is { } st) o = o with { StepTimeout = Duration(StepTimeout, st) };
        if (Get(ChecksumEvery) is { } ce) o = o with { ChecksumEvery = Int(ChecksumEvery, ce) };
        if (Get(ClusterName) is { } name) o = o with { ClusterName = name };
        if (Get(DownAfter) is { } da) o = o with { DownAfter = Duration(DownAfter, da) };
        if (Get(AkkaLogLevel) is { } level) o = o with { AkkaLogLevel = level.ToUpperInvariant() };
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

    public static NodeRoles ParseRole(string text) => text.Trim().ToLowerInvariant() switch
    {
        "coordinator" => NodeRoles.Coordinator,
        "worker" => NodeRoles.Worker,
        "both" => NodeRoles.Both,
        _ => throw new ConfigException($"role must be coordinator, worker or both, got '{text}'"),
    };

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

    private static int Int(string name, string text) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new ConfigException($"{name}={text} is not an integer");

    private static TimeSpan Duration(string name, string text) => ParseDuration(text, name);
}
