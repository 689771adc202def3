using Dnm.Core.Config;

namespace Dnm.Core.Tests.Configuration;

public class DnmConfigSpec
{
    [Fact]
    public void Configs_with_the_same_lists_are_equal_and_round_trip_through_json()
    {
        var a = new DnmConfig { Channels = [4, 4, 2], Hidden = [32, 16] };
        var b = new DnmConfig { Channels = new[] { 4, 4, 2 }, Hidden = [32, 16] };
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, b with { Channels = [4, 4, 3] });
        var json = a.ToJson();
        Assert.Contains("\"channels\": [", json);
        Assert.Equal(a, DnmConfig.FromJson(json, "x"));
        Assert.Equal("4,4,2", a.Channels.ToString());
        Assert.Equal(2, a.Channels[^1]);
    }

    [Fact]
    public void A_missing_or_empty_list_is_a_config_problem()
    {
        var e = Assert.Throws<ConfigException>(() => DnmConfig.FromJson("""{ "channels": [] }""", "run.json").Validated());
        Assert.Contains("channels must be a non-empty list of positive integers", e.Message);
        e = Assert.Throws<ConfigException>(() => DnmConfig.FromJson("""{ "hidden": null }""", "run.json").Validated());
        Assert.Contains("hidden must be a non-empty list", e.Message);
    }
}
