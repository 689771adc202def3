using System.CommandLine;
using System.Globalization;
using System.Net;
using Dnm.Core.Config;

namespace Dnm.Node.Telemetry;

/// <summary>How a process reports: where it serves /metrics, and whether it exports OTLP.</summary>
/// <param name="MetricsPort">Port of /metrics, /healthz and /readyz; 0 serves nothing.</param>
/// <param name="MetricsHost">Address or host name to bind; null for every interface.</param>
/// <param name="OtlpEndpoint">OTEL_EXPORTER_OTLP_ENDPOINT; traces and metrics go there when it is set.</param>
public sealed record TelemetryOptions(int MetricsPort, string? MetricsHost, string? OtlpEndpoint)
{
    /// <summary>The OpenTelemetry Prometheus exporter's registered port, so a scrape config can assume it.</summary>
    public const int DefaultMetricsPort = 9464;

    public static readonly TelemetryOptions Off = new(0, null, null);

    /// <summary>The addresses <see cref="MetricsHost"/> names: itself if it is one, else what DNS says; empty for every interface.</summary>
    public IReadOnlyList<IPAddress> BindAddresses()
    {
        if (string.IsNullOrWhiteSpace(MetricsHost) || MetricsHost is "*" or "+") return [];
        if (IPAddress.TryParse(MetricsHost.Trim('[', ']'), out var address))
            return address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) ? [] : [address];
        try
        {
            return Dns.GetHostAddresses(MetricsHost);
        }
        catch (System.Net.Sockets.SocketException e)
        {
            throw new ConfigException($"metrics host '{MetricsHost}' does not resolve ({e.Message}); give an address, or leave it unset to serve on every interface");
        }
    }
}

/// <summary>
/// The flags a long-running `dnm` command adds for telemetry. Precedence: flag, then environment
/// (DNM_METRICS_PORT, DNM_HOST), then the default (port 9464 on every interface).
/// </summary>
/// <param name="hostVariable">
/// The variable the metrics address defaults to, or null for every interface. `dnm node` passes null: its DNM_HOST is
/// the name other nodes reach it by (on Kubernetes a DNS name that may not resolve yet when the pod starts), and its
/// probes and scrapes come by pod IP.
/// </param>
public sealed class TelemetryFlags(string? hostVariable = "DNM_HOST")
{
    private readonly Option<int> port = new("--metrics-port")
    {
        Description = $"Port of /metrics, /healthz and /readyz; 0 turns them off [default: $DNM_METRICS_PORT, else {TelemetryOptions.DefaultMetricsPort}]",
        HelpName = "port",
    };

    private readonly Option<string> host = new("--metrics-host")
    {
        Description = hostVariable is null
            ? "Address (or host name) to serve metrics on [default: every interface]"
            : $"Address (or host name) to serve metrics on [default: ${hostVariable}, else every interface]",
        HelpName = "address",
    };

    private readonly Option<bool> off = new("--no-metrics")
    {
        Description = "Serve no metrics endpoint (OTLP export still follows OTEL_EXPORTER_OTLP_ENDPOINT)",
    };

    /// <summary>The port's variable: the same name `dnm node` lists in NodeEnvironment.Variables.</summary>
    public const string MetricsPortVariable = Dnm.Cluster.Hosting.NodeEnvironment.MetricsPort;

    public IEnumerable<Option> Options => [port, host, off];

    public TelemetryOptions Resolve(ParseResult parsed, Func<string, string?> environment)
    {
        var otlp = NonEmpty(environment("OTEL_EXPORTER_OTLP_ENDPOINT"));
        var address = parsed.GetResult(host) is not null ? parsed.GetValue(host) : (hostVariable is null ? null : NonEmpty(environment(hostVariable)));
        if (parsed.GetValue(off)) return new TelemetryOptions(0, address, otlp);
        int value;
        if (parsed.GetResult(port) is not null) value = parsed.GetValue(port);
        else if (NonEmpty(environment(MetricsPortVariable)) is { } text)
        {
            if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value))
                throw new ConfigException($"{MetricsPortVariable} '{text}' is not a port number");
        }
        else value = TelemetryOptions.DefaultMetricsPort;
        if (value is < 0 or > 65535) throw new ConfigException($"metrics port {value} is outside 0-65535");
        return new TelemetryOptions(value, address, otlp);
    }

    private static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();
}
