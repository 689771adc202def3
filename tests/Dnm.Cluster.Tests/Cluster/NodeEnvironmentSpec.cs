using System.Reflection;
using Dnm.Cluster.Hosting;
using Dnm.Core.Config;

namespace Dnm.Cluster.Tests.Cluster;

public sealed class NodeEnvironmentSpec
{
    [Fact]
    public void Variables_should_list_every_variable_the_node_reads()
    {
        var constants = typeof(NodeEnvironment).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.IsLiteral && f.FieldType == typeof(string)).Select(f => (string)f.GetRawConstantValue()!);
        Assert.Subset(NodeEnvironment.Variables.ToHashSet(), constants.ToHashSet());
        Assert.Contains("DNM_DATA", NodeEnvironment.Variables);
        Assert.All(NodeEnvironment.Variables, v => Assert.StartsWith("DNM_", v));
    }

    [Fact]
    public void Should_read_every_option_from_the_environment()
    {
        var env = new Dictionary<string, string>
        {
            ["DNM_ROLE"] = "worker", ["DNM_SEEDS"] = "dnm-0.dnm.default.svc:4053, dnm-1.dnm.default.svc:4053", ["DNM_HOST"] = "dnm-2.dnm.default.svc",
            ["DNM_PORT"] = "4054", ["DNM_DATA_PLANE_PORT"] = "4100", ["DNM_MIN_WORKERS"] = "3", ["DNM_LOCAL_WORKERS"] = "2",
            ["DNM_DEVICES"] = "cuda:0,cuda:1", ["DNM_JOIN_TIMEOUT"] = "2m", ["DNM_STEP_TIMEOUT"] = "500ms", ["DNM_CHECKSUM_EVERY"] = "7",
            ["DNM_BIND_HOST"] = "10.0.0.5", ["DNM_DOWN_AFTER"] = "15", ["DNM_CLUSTER_NAME"] = "maps",
            ["DNM_COMMIT_LOG"] = "on",
        };
        var o = NodeEnvironment.Apply(new NodeOptions(), k => env.GetValueOrDefault(k));
        Assert.Equal(NodeRoles.Worker, o.Roles);
        Assert.Equal(["dnm-0.dnm.default.svc:4053", "dnm-1.dnm.default.svc:4053"], o.Seeds);
        Assert.Equal(("dnm-2.dnm.default.svc", "10.0.0.5", 4054, 4100), (o.Host, o.BindHost, o.Port, o.DataPlanePort));
        Assert.Equal((3, 2, 7), (o.MinWorkers, o.LocalWorkers, o.ChecksumEvery));
        Assert.Equal(["cuda:0", "cuda:1"], o.Devices);
        Assert.Equal((TimeSpan.FromMinutes(2), TimeSpan.FromMilliseconds(500), TimeSpan.FromSeconds(15)), (o.JoinTimeout, o.StepTimeout, o.DownAfter));
        Assert.Equal("maps", o.ClusterName);
        Assert.True(o.CommitLog);
        Assert.Empty(o.Problems());
    }

    [Fact]
    public void The_option_table_shows_each_default_in_a_form_it_parses_back()
    {
        var defaults = new NodeOptions();
        Assert.Equal(NodeEnvironment.Options.Count, NodeEnvironment.Options.Select(o => o.Variable).Distinct().Count());
        // Seeds, devices and the TLS files show "none" (or a flag) for no value.
        foreach (var option in NodeEnvironment.Options.Where(o => o.Key is not ("seeds" or "devices" or "tls-cert" or "tls-key" or "tls-ca")))
            Assert.Equal(defaults, option.Parse(defaults, option.Show(defaults), option.Flag));
        // Every table entry is a variable the node reads; the flags are the entries that have one.
        Assert.Subset(NodeEnvironment.Variables.ToHashSet(), NodeEnvironment.Options.Select(o => o.Variable).ToHashSet());
        var e = Assert.Throws<ConfigException>(() => NodeEnvironment.Options.Single(o => o.Key == "port").Parse(defaults, "x", "--port"));
        Assert.Equal("--port 'x' is not an integer", e.Message);
    }

    [Theory]
    [InlineData("DNM_ROLE", "boss", "DNM_ROLE: role must be coordinator, worker or both")]
    [InlineData("DNM_PORT", "x", "DNM_PORT=x is not an integer")]
    [InlineData("DNM_JOIN_TIMEOUT", "soon", "is not a duration")]
    [InlineData("DNM_COMMIT_LOG", "yes", "DNM_COMMIT_LOG=yes must be on or off")]
    public void Should_reject_a_bad_value_naming_it(string variable, string value, string message)
    {
        var e = Assert.Throws<ConfigException>(() => NodeEnvironment.Apply(new NodeOptions(), k => k == variable ? value : null));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Should_report_problems_a_user_can_fix()
    {
        var problems = new NodeOptions { Roles = NodeRoles.Worker, Seeds = ["nohost"], MinWorkers = 0 }.Problems();
        Assert.Contains(problems, p => p.Contains("seed 'nohost' is not host:port", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("min-workers", StringComparison.Ordinal));
        Assert.Contains(new NodeOptions { Roles = NodeRoles.Worker }.Problems(), p => p.Contains("needs --seeds", StringComparison.Ordinal));
    }
}
