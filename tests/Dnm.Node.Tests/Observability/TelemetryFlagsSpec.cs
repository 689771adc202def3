using System.CommandLine;
using Dnm.Core.Config;
using Dnm.Node.Telemetry;

namespace Dnm.Node.Tests.Observability;

public sealed class TelemetryFlagsSpec
{
    private static TelemetryOptions Resolve(string[] args, Dictionary<string, string>? environment = null)
    {
        var flags = new TelemetryFlags();
        var command = new RootCommand();
        foreach (var option in flags.Options) command.Add(option);
        var parsed = command.Parse(args);
        Assert.Empty(parsed.Errors);
        return flags.Resolve(parsed, name => environment?.GetValueOrDefault(name));
    }

    [Fact]
    public void Without_flags_or_environment_metrics_should_be_on_port_9464_on_every_interface()
    {
        var options = Resolve([]);
        Assert.Equal(new TelemetryOptions(9464, null, null), options);
        Assert.Empty(options.BindAddresses());
    }

    [Fact]
    public void The_environment_should_set_port_host_and_otlp_and_flags_should_override_it()
    {
        var environment = new Dictionary<string, string>
        {
            ["DNM_METRICS_PORT"] = "9100", ["DNM_HOST"] = "10.1.2.3", ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://collector:4318",
        };
        Assert.Equal(new TelemetryOptions(9100, "10.1.2.3", "http://collector:4318"), Resolve([], environment));
        Assert.Equal(new TelemetryOptions(9200, "127.0.0.1", "http://collector:4318"),
            Resolve(["--metrics-port", "9200", "--metrics-host", "127.0.0.1"], environment));
        Assert.Equal(0, Resolve(["--no-metrics"], environment).MetricsPort);
        Assert.Equal(0, Resolve([], new() { ["DNM_METRICS_PORT"] = "0" }).MetricsPort);
    }

    [Theory]
    [InlineData("0.0.0.0")]
    [InlineData("::")]
    [InlineData("*")]
    public void An_any_address_should_mean_every_interface(string host) =>
        Assert.Empty(new TelemetryOptions(9464, host, null).BindAddresses());

    [Fact]
    public void A_bad_port_should_be_a_usage_error()
    {
        Assert.Throws<ConfigException>(() => Resolve([], new() { ["DNM_METRICS_PORT"] = "nine" }));
        var result = Cli.Run("train", "--metrics-port", "70000");
        Assert.Equal(2, result.ExitCode);
        Assert.Equal(["error: metrics port 70000 is outside 0-65535"], result.ErrorLines);
    }
}
