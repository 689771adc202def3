using System.Text;
using Dnm.Core.Config;
using Dnm.Core.Export;
using Dnm.Core.Som;
using Dnm.Core.Training;
using static TorchSharp.torch;

namespace Dnm.Core.Tests.Training;

/// <summary>Checkpoints and exported models record the lattice; a checkpoint from before the lattice keys reads as a flat rect map.</summary>
public sealed class LatticeCheckpointSpec : IDisposable
{
    private readonly ScratchDirectory dir = new();

    public void Dispose() => dir.Dispose();

    private sealed class NoObserver : ITrainingObserver;

    private string Save(Dnm.Core.Config.DnmConfig config, string name)
    {
        using var data = InMemoryDataset.Blobs(40, 1);
        using var trainer = new Trainer(config with { Out = dir.Path }, data, data, CPU, new RunDirectory(dir.Path), new NoObserver());
        var path = dir.File(name);
        trainer.ToCheckpoint().Save(path);
        return path;
    }

    [Fact]
    public void A_hex_torus_checkpoint_and_its_export_should_keep_the_lattice()
    {
        var path = Save(StepEngineSpec.Small with { Map = "2x3", Lattice = LatticeKind.Hex, Toroidal = true }, "hex.ckpt");
        var checkpoint = Checkpoint.Load(path);
        Assert.Equal(new MapGrid(2, 3, LatticeKind.Hex, toroidal: true), MapGrid.Of(checkpoint.Config));
        var exported = dir.File("hex.safetensors");
        ExportedModel.From(checkpoint).Write(exported, ExportFormat.Safetensors);
        var config = ExportedModel.ReadConfig(exported);
        Assert.Equal((LatticeKind.Hex, true), (config.Lattice, config.Toroidal));
        Assert.Contains("\"lattice\": \"hex\"", Dnm.Core.Export.SafetensorsFile.ReadMetadata(exported)[ExportedModel.ConfigKey]);
    }

    [Fact]
    public void A_checkpoint_without_the_lattice_keys_should_load_as_a_flat_rect_map()
    {
        var (header, data) = HostileCheckpointSpec.Split(Save(StepEngineSpec.Small with { Map = "2x3" }, "rect.ckpt"));
        var config = header["config"]!.AsObject();
        Assert.True(config.Remove("lattice") && config.Remove("toroidal"), "the header should hold both keys");
        var old = dir.File("old.ckpt");
        HostileCheckpointSpec.Write(old, Encoding.UTF8.GetBytes(header.ToJsonString()), data);

        var checkpoint = Checkpoint.Load(old);
        Assert.Equal(new MapGrid(2, 3), MapGrid.Of(checkpoint.Config));
    }

    [Fact]
    public void A_checkpoint_from_before_the_defaults_changed_should_load_as_the_run_it_was()
    {
        // Written before the encoder, lattice and smooth-weight keys existed: a conv model on the square lattice, unsmoothed.
        var (header, data) = HostileCheckpointSpec.Split(Save(StepEngineSpec.Small with { Map = "2x3", Encoder = EncoderKind.Conv, SmoothWeight = 0 }, "conv.ckpt"));
        var config = header["config"]!.AsObject();
        Assert.True(config.Remove("encoder") && config.Remove("lattice") && config.Remove("smooth-weight"), "the header should hold the keys");
        var old = dir.File("old-defaults.ckpt");
        HostileCheckpointSpec.Write(old, Encoding.UTF8.GetBytes(header.ToJsonString()), data);

        var loaded = Checkpoint.Load(old).Config;
        Assert.Equal(EncoderKind.Conv, loaded.Encoder);
        Assert.Equal(LatticeKind.Rect, loaded.Lattice);
        Assert.True(loaded.SmoothWeightChosen);
        Assert.Equal(0, loaded.ForTrainingSet(1000).SmoothWeight);
    }

    [Fact]
    public void A_checkpoint_declaring_a_toroidal_hex_map_with_odd_rows_should_be_invalid()
    {
        var (header, data) = HostileCheckpointSpec.Split(Save(StepEngineSpec.Small with { Map = "3x2" }, "odd.ckpt"));
        header["config"]!["lattice"] = "hex";
        header["config"]!["toroidal"] = true;
        var path = dir.File("hostile.ckpt");
        HostileCheckpointSpec.Write(path, Encoding.UTF8.GetBytes(header.ToJsonString()), data);
        var e = Assert.Throws<CheckpointException>(() => Checkpoint.Load(path));
        Assert.Contains("toroidal hex lattice needs an even number of rows", e.Message);
    }
}
