using System.Diagnostics;
using System.Text.Json;
using Dnm.Tests.Shared;

namespace Dnm.Node.Tests.Data;

/// <summary>
/// Shards as users make them: written by Python's tarfile in WebDataset layout (no manifest, no .idx), trained in one
/// process and with --workers 2 (bitwise equal), evaluated on the test-*.tar split; the same shards over HTTP; and
/// the bad inputs each with its one line and exit code.
/// </summary>
public sealed class ShardTrainingSpec : IDisposable
{
    private readonly ScratchDirectory dir = new();

    public void Dispose() => dir.Dispose();

    /// <summary>
    /// 4 classes of blobs, 16×16 grayscale PNG via PIL, written with tarfile (PAX, Python's default), 3 training shards of
    /// uneven size and 1 test shard.
    /// </summary>
    private const string Writer = """
        import io, sys, tarfile, random
        from PIL import Image
        out = sys.argv[1]
        rng = random.Random(5)
        def sample(i):
            label = i % 4
            cx, cy = [(4, 4), (11, 4), (4, 11), (11, 11)][label]
            cx += rng.randint(-1, 1); cy += rng.randint(-1, 1)
            img = Image.new("L", (16, 16))
            img.putdata([int(255 * 2.718 ** (-((x - cx) ** 2 + (y - cy) ** 2) / 6.0)) for y in range(16) for x in range(16)])
            buf = io.BytesIO(); img.save(buf, format="PNG")
            return buf.getvalue(), str(label).encode()
        def add(tar, name, data):
            info = tarfile.TarInfo(name); info.size = len(data); info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
        n = 0
        for name, count in [("train-000000.tar", 70), ("train-000001.tar", 50), ("train-000002.tar", 40), ("test-000000.tar", 48)]:
            with tarfile.open(f"{out}/{name}", "w") as tar:
                for _ in range(count):
                    png, cls = sample(n)
                    add(tar, f"s{n:05d}.png", png); add(tar, f"s{n:05d}.cls", cls); n += 1
        """;

    private string WriteShards()
    {
        var script = dir.File("write.py");
        File.WriteAllText(script, Writer);
        var shards = Directory.CreateDirectory(dir.File("shards")).FullName;
        // Debian's interpreter, where apt puts python3-pil (a pyenv shim earlier on PATH may lack it).
        var start = new ProcessStartInfo(File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3") { RedirectStandardError = true, RedirectStandardOutput = true };
        start.ArgumentList.Add(script);
        start.ArgumentList.Add(shards);
        using var python = Process.Start(start)!;
        var error = python.StandardError.ReadToEnd();
        python.WaitForExit();
        Assert.True(python.ExitCode == 0, $"python3 with PIL is needed (CI installs python3-pil): {error}");
        return shards;
    }

    private static string[] Train(string dataset, string outDir, params string[] extra) =>
    [
        "train", "--dataset", dataset, "--map", "4x4", "--epochs", "2", "--pretrain-epochs", "6", "--som-iterations", "200",
        "--batch-size", "16", "--micro-batch", "4", "--seed", "3", "--learning-rate", "0.003", "--device", "cpu", "--no-metrics",
        "--encoder", "mlp", "--hidden", "32,16", "--latent", "6", "--out", outDir, .. extra,
    ];

    [Fact]
    public async Task Python_tarfile_shards_should_train_with_two_workers_bitwise_like_one_process_and_evaluate_on_their_test_split()
    {
        var shards = WriteShards();

        var single = await DnmProcess.RunAsync(Train($"shards:{shards}", dir.File("single"), "--threads", "2"), TimeSpan.FromMinutes(3));
        var two = await DnmProcess.RunAsync(Train($"shards:{shards}", dir.File("two"), "--threads", "1", "--workers", "2"), TimeSpan.FromMinutes(3));

        Assert.True(single.ExitCode == 0, single.Error + single.Out);
        Assert.True(two.ExitCode == 0, two.Error + two.Out);
        Assert.Contains("160 samples", single.Out);
        var metrics = File.ReadAllText(Path.Combine(dir.File("single"), "final-metrics.json"));
        Assert.Equal(metrics, File.ReadAllText(Path.Combine(dir.File("two"), "final-metrics.json")));
        using var json = JsonDocument.Parse(metrics);
        Assert.Equal("test", json.RootElement.GetProperty("split").GetString());
        Assert.Equal(48, json.RootElement.GetProperty("samples").GetInt32());
        Assert.True(json.RootElement.GetProperty("purity").GetDouble() > 0.5, metrics);

        // dnm map on the shards names every placed image by its WebDataset key and class.
        var map = Cli.Run("map", "--checkpoint", Path.Combine(dir.File("single"), "checkpoints", "final.ckpt"), "--out", dir.File("map"), "--device", "cpu");
        Assert.True(map.ExitCode == 0, map.Error);
        var csv = File.ReadAllLines(Path.Combine(dir.File("map"), "placements.csv"));
        Assert.Equal(49, csv.Length);
        Assert.StartsWith("0,s00160,0,0,", csv[1]);
    }

    [Fact]
    public void Shards_over_http_should_train_like_local_shards()
    {
        var shards = WriteShards();
        using var server = new RangeFileServer(shards);

        var local = Cli.Run(Train($"shards:{shards}", dir.File("local")));
        var remote = Cli.Run(Train($"shards:{server.BaseUrl}train-{{000000..000002}}.tar", dir.File("remote"), "--test-dataset", $"shards:{server.BaseUrl}test-000000.tar"));

        Assert.True(local.ExitCode == 0, local.Error);
        Assert.True(remote.ExitCode == 0, remote.Error);
        Assert.Equal(File.ReadAllText(Path.Combine(dir.File("local"), "final-metrics.json")), File.ReadAllText(Path.Combine(dir.File("remote"), "final-metrics.json")));
    }

    [Fact]
    public void A_dataset_without_a_test_split_should_say_so_once_and_record_split_train()
    {
        var shards = WriteShards();
        var pattern = Path.Combine(shards, "train-{000000..000002}.tar");

        var result = Cli.Run(Train($"shards:{pattern}", dir.File("run")));

        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Single(result.Out.Split('\n'), l => l.Contains("has no test split", StringComparison.Ordinal));
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.File("run"), "final-metrics.json")));
        Assert.Equal("train", json.RootElement.GetProperty("split").GetString());
    }

    [Fact]
    public void A_test_fraction_should_hold_out_part_of_the_training_shards()
    {
        var shards = WriteShards();
        var pattern = Path.Combine(shards, "train-{000000..000002}.tar");

        var result = Cli.Run(Train($"shards:{pattern}", dir.File("run"), "--test-fraction", "0.25"));

        Assert.True(result.ExitCode == 0, result.Error);
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir.File("run"), "final-metrics.json")));
        Assert.Equal("test", json.RootElement.GetProperty("split").GetString());
        Assert.InRange(json.RootElement.GetProperty("samples").GetInt32(), 25, 55);
    }

    [Fact]
    public void Bad_shards_should_get_one_line_naming_shard_and_key_and_exit_3()
    {
        var shards = WriteShards();
        var tar = Path.Combine(shards, "train-000001.tar");
        var bytes = File.ReadAllBytes(tar);
        // Break one member's header: the checksum no longer matches.
        // Python's tarfile writes plain ustar headers here: sample 0's image at 0, its label at 1024, sample 1 at 2048.
        int header = 512 * 4;
        bytes[header + 1] ^= 0x21;
        File.WriteAllBytes(tar, bytes);

        var result = Cli.Run(Train($"shards:{shards}", dir.File("run")));

        Assert.Equal(3, result.ExitCode);
        var line = Assert.Single(result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: shard ", line);
        Assert.Contains("train-000001.tar", line);
        Assert.False(File.Exists(Path.Combine(dir.File("run"), "config.json")), "nothing is written before the data opens");
    }

    [Fact]
    public void Bad_specs_and_patterns_should_be_usage_errors_with_exit_2()
    {
        Assert.Equal(2, Cli.Run(Train("shards:", dir.File("a"))).ExitCode);
        Assert.Equal(2, Cli.Run(Train($"shards:{dir.Path}/t-{{9..1}}.tar", dir.File("b"))).ExitCode);
        Assert.Equal(2, Cli.Run(Train("mnist", dir.File("c"), "--test-fraction", "1.5")).ExitCode);
        var missing = Cli.Run(Train($"shards:{dir.Path}/t-{{0..3}}.tar", dir.File("d")));
        Assert.Equal(3, missing.ExitCode);
        Assert.Contains("t-0.tar does not exist", missing.Error);
    }

    [Fact]
    public void Data_pack_should_write_shards_a_manifest_and_indexes_that_train_bitwise_like_the_source()
    {
        var spec = SyntheticIdx.Spec(dir.Path, count: 120);
        var packed = dir.File("packed");

        var pack = Cli.Run("data", "pack", "--from", spec, "--out", packed, "--shard-size", "16KB", "--test-fraction", "0.2");

        Assert.True(pack.ExitCode == 0, pack.Error);
        Assert.True(File.Exists(Path.Combine(packed, "manifest.json")));
        Assert.True(Directory.GetFiles(packed, "train-*.tar").Length > 1);
        Assert.True(Directory.GetFiles(packed, "test-*.tar").Length >= 1);
        Assert.Equal(Directory.GetFiles(packed, "*.tar").Length, Directory.GetFiles(packed, "*.tar.idx").Length);
        // The packed split is the source's key-hash split: training on either gives the same map.
        var fromShards = Cli.Run(Train($"shards:{packed}", dir.File("shards")));
        var fromSource = Cli.Run(Train(spec, dir.File("source"), "--test-fraction", "0.2"));
        Assert.True(fromShards.ExitCode == 0, fromShards.Error);
        Assert.True(fromSource.ExitCode == 0, fromSource.Error);
        Assert.Equal(File.ReadAllText(Path.Combine(dir.File("source"), "final-metrics.json")), File.ReadAllText(Path.Combine(dir.File("shards"), "final-metrics.json")));
    }
}
