using Dnm.Core.Config;
using Dnm.Core.Export;
using Dnm.Core.Som;

namespace Dnm.Core.Tests.Configuration;

/// <summary>The lattice keys in config files, checkpoint headers and exported models.</summary>
public sealed class LatticeConfigSpec
{
    [Fact]
    public void The_lattice_keys_should_round_trip_as_kebab_case_words()
    {
        var config = new DnmConfig { Map = "4x6", Lattice = LatticeKind.Hex, Toroidal = true };
        var json = config.ToJson();
        Assert.Contains("\"lattice\": \"hex\"", json);
        Assert.Contains("\"toroidal\": true", json);
        Assert.Equal(config, DnmConfig.FromJson(json, "test"));
        Assert.Empty(config.Problems());
        Assert.Equal(new MapGrid(4, 6, LatticeKind.Hex, toroidal: true), MapGrid.Of(config));
    }

    [Fact]
    public void A_config_written_before_the_lattice_keys_should_read_as_a_flat_rect_map()
    {
        // What an exported model's config and every checkpoint header held before: no lattice, no toroidal.
        var config = DnmConfig.FromRecordedJson("""{ "map": "3x5", "latent": 4 }""", "old");
        Assert.Equal(LatticeKind.Rect, config.Lattice);
        Assert.False(config.Toroidal);
        Assert.Equal(new MapGrid(3, 5), MapGrid.Of(config));
    }

    [Fact]
    public void A_toroidal_hex_map_with_odd_rows_should_be_one_problem()
    {
        var problems = new DnmConfig { Map = "5x6", Lattice = LatticeKind.Hex, Toroidal = true }.Problems();
        Assert.Equal("a toroidal hex lattice needs an even number of rows (odd-r offset rows repeat every two), got map 5x6: use 6x6 or 4x6",
            Assert.Single(problems));
        Assert.Contains("lattice must be one of rect, hex, got '7'", Assert.Single(new DnmConfig { Lattice = (LatticeKind)7 }.Problems()));
    }

    [Fact]
    public void Warm_starting_prototypes_from_another_lattice_should_name_the_flags()
    {
        var run = new DnmConfig { Map = "4x4", Lattice = LatticeKind.Rect };
        var exported = run with { Lattice = LatticeKind.Hex, Toroidal = true };
        var e = Assert.Throws<ConfigException>(() => WarmStart.CheckConfig(run, exported, InitParts.Prototypes, "m.safetensors"));
        Assert.Contains("--lattice hex (this run: rect), --toroidal true (this run: false)", e.Message);
        // The autoencoder's weights do not depend on the lattice.
        WarmStart.CheckConfig(run, exported, InitParts.Weights, "m.safetensors");
    }
}
