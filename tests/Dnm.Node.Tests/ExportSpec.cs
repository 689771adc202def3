using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Dnm.Core.Config;
using Dnm.Core.Evaluation;
using Dnm.Core.Export;
using Dnm.Core.Training;
using Dnm.Core.Visual;
using Dnm.Tests.Shared;
using SkiaSharp;

namespace Dnm.Node.Tests;

/// <summary>A tiny conv and a tiny mlp run on 300 synthetic images, each exported and mapped with --embeddings.</summary>
public sealed class ExportedRunsFixture : IDisposable
{
    public static readonly string[] Common =
    [
        "--map", "4x4", "--epochs", "2", "--pretrain-epochs", "1", "--som-iterations", "50", "--batch-size", "64", "--device", "cpu", "--threads", "1",
        "--lattice", "rect", // the hit-map pixels below are read on the square grid
    ];

    /// <summary>The model flags of each encoder's run (the mlp one with a sigmoid on z, so both latent activations are checked).</summary>
    public static readonly Dictionary<string, string[]> ModelFlags = new()
    {
        ["conv"] = ["--encoder", "conv", "--channels", "4,4,2", "--latent", "8"],
        ["mlp"] = ["--encoder", "mlp", "--hidden", "32,16", "--latent", "4", "--latent-activation", "sigmoid"],
    };

    public ExportedRunsFixture()
    {
        Dataset = SyntheticIdx.Spec(Directory.Path, count: 300);
        foreach (var (encoder, flags) in ModelFlags)
        {
            var run = new ExportedRun(encoder, Directory.File(encoder));
            run.Train = Cli.Run(["train", "--dataset", Dataset, "--out", run.RunDirectory, .. Common, .. flags]);
            run.Export = Cli.Run(["export", "--checkpoint", run.FinalCheckpoint, "--format", "safetensors", "--out", run.Model]);
            run.Map = Cli.Run(["map", "--checkpoint", run.FinalCheckpoint, "--dataset", Dataset, "--device", "cpu", "--out", run.MapDirectory, "--embeddings", run.Embeddings]);
            Runs[encoder] = run;
        }
    }

    public ScratchDirectory Directory { get; } = new();
    public string Dataset { get; }
    /// <summary>The IDX images file of <see cref="Dataset"/> (idx:&lt;images&gt;,&lt;labels&gt;).</summary>
    public string Images => Dataset["idx:".Length..].Split(',')[0];
    public Dictionary<string, ExportedRun> Runs { get; } = [];

    public void Dispose() => Directory.Dispose();
}

public sealed class ExportedRun(string encoder, string root)
{
    public string Encoder { get; } = encoder;
    public string RunDirectory { get; } = Path.Combine(root, "run");
    public string FinalCheckpoint => Path.Combine(RunDirectory, "checkpoints", "final.ckpt");
    public string Model { get; } = Path.Combine(root, "model.safetensors");
    public string MapDirectory { get; } = Path.Combine(root, "map");
    public string Embeddings => Path.Combine(MapDirectory, "embeddings.npy");
    public string Placements => Path.Combine(MapDirectory, "placements.csv");
    public CliResult Train { get; set; } = null!;
    public CliResult Export { get; set; } = null!;
    public CliResult Map { get; set; } = null!;

    public void RequireSucceeded()
    {
        foreach (var (what, result) in new[] { ("train", Train), ("export", Export), ("map", Map) })
            Assert.True(result.ExitCode == 0, $"{Encoder} {what}: {result.Error}{result.Out}");
    }
}

[Collection(TorchCollection.Name)]
public sealed class ExportSpec(ExportedRunsFixture fixture) : IClassFixture<ExportedRunsFixture>
{
    [NeedsPyTorchTheory]
    [InlineData("conv")]
    [InlineData("mlp")]
    public void PyTorch_should_rebuild_the_exported_model_and_reproduce_the_embeddings_and_placements_to_1e_5(string encoder)
    {
        var run = fixture.Runs[encoder];
        run.RequireSucceeded();

        var (code, output) = PyTorch.Run(Repo.Path("scripts", "check-export.py"), "--model", run.Model, "--images", fixture.Images,
            "--embeddings", run.Embeddings, "--placements", run.Placements, "--tolerance", "1e-5");

        Assert.True(code == 0, output);
        Assert.Contains($"check-export: OK: {encoder} model, 300 images", output);
        Assert.Contains("byte-identical to numpy.save", output);
    }

    [Theory]
    [InlineData("conv")]
    [InlineData("mlp")]
    public void Export_should_hold_the_checkpoint_parameters_under_their_names_the_prototypes_and_the_run_config(string encoder)
    {
        var run = fixture.Runs[encoder];
        run.RequireSucceeded();
        var checkpoint = Checkpoint.Load(run.FinalCheckpoint);

        var file = SafetensorsFile.Read(run.Model);

        var expected = checkpoint.Tensors.Where(t => t.Name.StartsWith("param/", StringComparison.Ordinal))
            .Select(t => (t.Name["param/".Length..], t.Shape, t.Data))
            .Append((ExportedModel.PrototypesName, checkpoint.Tensors.Single(t => t.Name == "som/w").Shape, checkpoint.Tensors.Single(t => t.Name == "som/w").Data))
            .ToArray();
        Assert.Equal(expected.Select(e => e.Item1), file.Tensors.Select(t => t.Name));
        foreach (var (name, shape, data) in expected)
        {
            Assert.Equal(shape, file.Find(name)!.Shape);
            Assert.Equal(data, file.Find(name)!.Data);
        }
        Assert.Contains(encoder == "conv" ? "encoderConvs.conv1.weight" : "encoder.dense1.weight", file.Tensors.Select(t => t.Name));
        var config = DnmConfig.FromJson(file.Metadata[ExportedModel.ConfigKey], "metadata");
        Assert.Equal(File.ReadAllText(Path.Combine(run.RunDirectory, "config.json")), config.ToJson());
        Assert.Equal("""{"channels":1,"height":12,"width":12}""", file.Metadata[ExportedModel.ImageShapeKey]);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Contains($"to {run.Model}", run.Export.Out);
    }

    [Fact]
    public void Map_embeddings_should_be_one_npy_row_per_placement_whose_nearest_prototype_is_the_placed_node()
    {
        var run = fixture.Runs["conv"];
        run.RequireSucceeded();

        var bytes = File.ReadAllBytes(run.Embeddings);
        var headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8));
        Assert.StartsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (300, 8), }", Encoding.ASCII.GetString(bytes, 10, headerLength));
        var z = new float[300 * 8];
        Buffer.BlockCopy(bytes, 10 + headerLength, z, 0, z.Length * 4);
        Assert.Equal(10 + headerLength + z.Length * 4, bytes.Length);

        // Each row's BMU among the checkpoint's prototypes is the node placements.csv gives it, in the same order.
        var w = Checkpoint.Load(run.FinalCheckpoint).Tensors.Single(t => t.Name == "som/w").Data;
        var (bmu, _, distance) = MapMetrics.BestMatches(z, 300, w, 16, 8);
        var rows = File.ReadAllLines(run.Placements).Skip(1).Select(l => l.Split(',')).ToArray();
        Assert.Equal(300, rows.Length);
        for (var i = 0; i < rows.Length; i++)
        {
            // index, key, label, class, row, col, distance
            Assert.Equal((bmu[i] / 4, bmu[i] % 4), (int.Parse(rows[i][4], CultureInfo.InvariantCulture), int.Parse(rows[i][5], CultureInfo.InvariantCulture)));
            Assert.Equal(distance[i], float.Parse(rows[i][6], CultureInfo.InvariantCulture));
        }
        Assert.Contains($"  {run.Embeddings}", run.Map.Out);
    }

    [Theory]
    [InlineData("conv", 3, 3)]
    [InlineData("mlp", 2, 2)]
    public void Map_should_draw_the_hit_map_of_the_placed_samples_and_one_component_plane_per_latent_dimension(string encoder, int gridCols, int gridRows)
    {
        var run = fixture.Runs[encoder];
        run.RequireSucceeded();
        var counts = new int[16];
        foreach (var line in File.ReadAllLines(run.Placements).Skip(1))
        {
            var fields = line.Split(',');
            counts[int.Parse(fields[4], CultureInfo.InvariantCulture) * 4 + int.Parse(fields[5], CultureInfo.InvariantCulture)]++;
        }

        using (var hitmap = Decode(Path.Combine(run.MapDirectory, "hitmap.png")))
        {
            // A 4x4 map: 100-pixel squares inside a 12-pixel margin (MapRenderer.CellSize, MapRenderer.Margin).
            Assert.Equal(2 * 12 + 4 * 100, hitmap.Height);
            for (var node = 0; node < 16; node++)
            {
                var expected = Palettes.Viridis(counts[node] / (double)counts.Max());
                var actual = hitmap.GetPixel(12 + node % 4 * 100 + 3, 12 + node / 4 * 100 + 3);
                Assert.True(expected == actual, $"node {node} holds {counts[node]} of {counts.Sum()} samples: expected {expected}, drawn {actual}");
            }
        }
        using (var planes = Decode(Path.Combine(run.MapDirectory, "component-planes.png")))
        {
            // Planes of 4 nodes x 40 pixels, 18 pixels of title above each, 12 pixels apart and around.
            Assert.Equal((2 * 12 + gridCols * 160 + (gridCols - 1) * 12, 2 * 12 + gridRows * (18 + 160) + (gridRows - 1) * 12), (planes.Width, planes.Height));
        }
        foreach (var picture in new[] { "hitmap.png", "component-planes.png" })
        {
            Assert.True(File.Exists(Path.Combine(run.RunDirectory, picture)), $"the run directory has no {picture}");
            Assert.Contains($"  {Path.Combine(run.MapDirectory, picture)}", run.Map.Out);
        }
    }

    [Theory]
    [InlineData("both", true, true)]
    [InlineData("weights", true, false)]
    [InlineData("prototypes", false, true)]
    public void Train_init_from_should_start_from_the_exported_parts_it_names(string parts, bool weights, bool prototypes)
    {
        var run = fixture.Runs["mlp"];
        run.RequireSucceeded();
        var output = fixture.Directory.File($"warm-{parts}");

        // No training at all: the final checkpoint is the state the run started from.
        var warm = Cli.Run(["train", "--dataset", fixture.Dataset, "--out", output, "--init-from", run.Model, "--init-parts", parts,
            .. Mlp("--pretrain-epochs", "0", "--som-iterations", "0", "--epochs", "0")]);

        Assert.True(warm.ExitCode == 0, warm.Error + warm.Out);
        Assert.Contains($"warm start: {parts} from {run.Model}", warm.Out);
        var exported = SafetensorsFile.Read(run.Model);
        var started = Checkpoint.Load(Path.Combine(output, "checkpoints", "final.ckpt")).Tensors.ToDictionary(t => t.Name);
        foreach (var tensor in exported.Tensors)
        {
            var isPrototypes = tensor.Name == ExportedModel.PrototypesName;
            var mine = started[isPrototypes ? "som/w" : "param/" + tensor.Name];
            var loaded = isPrototypes ? prototypes : weights;
            Assert.True(loaded == mine.Data.SequenceEqual(tensor.Data), $"{tensor.Name}: expected {(loaded ? "the file's values" : "other values")}");
        }
    }

    [Fact]
    public void Train_init_from_a_different_model_should_fail_naming_the_flags_before_it_starts()
    {
        var run = fixture.Runs["mlp"];
        run.RequireSucceeded();
        var output = fixture.Directory.File("warm-latent");

        var result = Cli.Run(["train", "--dataset", fixture.Dataset, "--out", output, "--init-from", run.Model,
            .. Mlp("--latent", "6", "--map", "3x3")]);

        Assert.Equal(CliErrors.Usage, result.ExitCode);
        var error = Assert.Single(result.ErrorLines);
        Assert.Contains($"--init-from {run.Model} holds a different model", error);
        Assert.Contains("--latent 4 (this run: 6)", error);
        Assert.Contains("--map 4x4 (this run: 3x3)", error);
        Assert.False(Directory.Exists(output), "a run directory was made for a run that cannot start");
    }

    [Fact]
    public void Train_init_from_a_model_of_other_images_should_fail_naming_both_shapes()
    {
        var run = fixture.Runs["mlp"];
        run.RequireSucceeded();
        var other = fixture.Directory.File("ten");
        Directory.CreateDirectory(other);

        var result = Cli.Run(["train", "--dataset", SyntheticIdx.Spec(other, size: 10), "--out", fixture.Directory.File("warm-shape"),
            "--init-from", run.Model, "--init-parts", "weights", .. ExportedRunsFixture.Common, .. ExportedRunsFixture.ModelFlags["mlp"]]);

        Assert.Equal(CliErrors.Usage, result.ExitCode);
        Assert.Contains("was trained on 1x12x12 images (channels x height x width) but this run's are 1x10x10", Assert.Single(result.ErrorLines));
    }

    [Fact]
    public void Train_init_from_a_missing_or_foreign_file_should_be_a_data_error()
    {
        var run = fixture.Runs["mlp"];
        run.RequireSucceeded();
        foreach (var (file, expected) in new[] { (fixture.Directory.File("none.safetensors"), "does not exist"), (run.FinalCheckpoint, "is not a valid safetensors file") })
        {
            var result = Cli.Run(["train", "--dataset", fixture.Dataset, "--out", fixture.Directory.File("warm-bad"), "--init-from", file,
                .. ExportedRunsFixture.Common, .. ExportedRunsFixture.ModelFlags["mlp"]]);

            Assert.Equal(CliErrors.Data, result.ExitCode);
            Assert.Contains(expected, Assert.Single(result.ErrorLines));
        }
    }

    [Fact]
    public void Export_should_refuse_an_unknown_format_and_a_missing_checkpoint()
    {
        var unknown = Cli.Run(["export", "--checkpoint", fixture.Runs["conv"].FinalCheckpoint, "--format", "onnx", "--out", fixture.Directory.File("x.onnx")]);
        Assert.Equal(CliErrors.Usage, unknown.ExitCode);
        Assert.Contains("safetensors", unknown.Error);

        var missing = Cli.Run(["export", "--checkpoint", fixture.Directory.File("none.ckpt"), "--out", fixture.Directory.File("x.safetensors")]);
        Assert.Equal(CliErrors.Data, missing.ExitCode);
        Assert.False(File.Exists(fixture.Directory.File("x.safetensors")));
    }

    /// <summary>The mlp run's flags with some values replaced (an option may be given once).</summary>
    private static string[] Mlp(params string[] overrides)
    {
        var flags = ExportedRunsFixture.Common.Concat(ExportedRunsFixture.ModelFlags["mlp"]).ToList();
        for (var i = 0; i < overrides.Length; i += 2)
        {
            var at = flags.IndexOf(overrides[i]);
            if (at >= 0) flags[at + 1] = overrides[i + 1];
            else flags.AddRange([overrides[i], overrides[i + 1]]);
        }
        return [.. flags];
    }

    private static SKBitmap Decode(string path)
    {
        Assert.True(File.Exists(path), $"{path} was not written");
        return SKBitmap.Decode(path) ?? throw new Xunit.Sdk.XunitException($"{path} is not a decodable image");
    }
}

/// <summary>Debian's python3 with python3-torch and python3-numpy (DNM_PYTHON overrides the interpreter).</summary>
public static class PyTorch
{
    public static string Interpreter { get; } = Environment.GetEnvironmentVariable("DNM_PYTHON") is { Length: > 0 } python ? python
        : File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

    private static readonly Lazy<bool> available = new(() =>
    {
        try
        {
            return Run("-c", "import torch, numpy").ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    });

    public static bool IsAvailable => available.Value;

    public static (int ExitCode, string Output) Run(params string[] args)
    {
        var start = new ProcessStartInfo(Interpreter) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{Interpreter} {string.Join(' ', args)} ran past 2 minutes");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>Skipped without PyTorch on a developer's machine; where CI=true it runs, and fails saying what to install.</summary>
    public static string? SkipReason =>
        IsAvailable || string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase)
            ? null
            : $"{Interpreter} cannot import torch and numpy (apt-get install python3-torch python3-numpy); with CI=true this fails instead";
}

public sealed class NeedsPyTorchTheoryAttribute : TheoryAttribute
{
    public NeedsPyTorchTheoryAttribute()
    {
        if (PyTorch.SkipReason is { } reason) Skip = reason;
    }
}
