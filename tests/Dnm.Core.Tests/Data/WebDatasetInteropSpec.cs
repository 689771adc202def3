using System.Diagnostics;
using Dnm.Core.Data;
using Dnm.Core.Data.Shards;
using Dnm.Tests.Shared;
using SkiaSharp;

namespace Dnm.Core.Tests.Data;

/// <summary>
/// Shards written by other tools read unchanged: Python's tarfile (through scripts/make-wds-shards.py, the script the
/// loader benchmark uses) and GNU tar.
/// </summary>
public sealed class WebDatasetInteropSpec : IDisposable
{
    private static readonly FolderOptions Rgb16 = new() { Channels = 3, Height = 16, Width = 16 };
    private readonly ScratchDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [NeedsPythonPilFact]
    public void Should_read_a_shard_set_written_by_pythons_tarfile_with_its_keys_labels_and_test_split()
    {
        string shards = _dir.File("shards"), folder = _dir.File("folder");
        var output = Python.Run(Repo.Path("scripts", "make-wds-shards.py"), "--out", shards, "--images", "50", "--test-images", "10",
            "--per-shard", "20", "--size", "16", "--classes", "3", "--seed", "7", "--folder", folder, "--quiet");
        Assert.Contains("wrote 50 train + 10 test images (16x16x3 jpg, 3 classes) in 3 + 1 shards", output);
        Assert.Equal(["test-000000.tar", "train-000000.tar", "train-000001.tar", "train-000002.tar"],
            Directory.GetFiles(shards).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        using var train = DatasetCatalog.Open($"shards:{shards}", "train", _dir.Path, folder: Rgb16);
        using var test = DatasetCatalog.Open($"shards:{shards}", "test", _dir.Path, folder: Rgb16);
        Assert.Equal(3, Assert.IsType<ShardDataset>(train).ShardCount);
        Assert.Equal(50, train.Count);
        Assert.Equal(10, test.Count);
        Assert.Equal(new ImageShape(3, 16, 16), train.Shape);
        // No manifest: the class names are the labels seen.
        Assert.Equal(["0", "1", "2"], train.ClassNames);
        Assert.Equal(Enumerable.Range(0, 50).Select(i => $"{i:D8}"), Enumerable.Range(0, 50).Select(train.Key));
        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"t{i:D7}"), Enumerable.Range(0, 10).Select(test.Key));

        // The script wrote each image to folder/<split>/class<label>/<key>.jpg too: the label of every sample must be its
        // folder's class, and its pixels those the folder dataset decodes from the same file.
        using var trainFolder = FolderDataset.Open(folder, Rgb16, "train");
        using var testFolder = FolderDataset.Open(folder, Rgb16, "test");
        AssertSameSamples(trainFolder, train);
        AssertSameSamples(testFolder, test);
        Assert.True(Enumerable.Range(0, 50).Select(train.Label).Distinct().Count() > 1, "50 images of 3 classes should not all have one label");
    }

    [NeedsPythonPilFact]
    public void Should_write_the_same_bytes_for_the_same_seed()
    {
        string[] Make(string name, string seed)
        {
            Python.Run(Repo.Path("scripts", "make-wds-shards.py"), "--out", _dir.File(name), "--images", "12", "--per-shard", "5",
                "--size", "8", "--format", "png", "--seed", seed, "--quiet");
            return Directory.GetFiles(_dir.File(name)).Order(StringComparer.Ordinal).Select(f => Convert.ToHexString(File.ReadAllBytes(f))).ToArray();
        }
        Assert.Equal(Make("a", "3"), Make("b", "3"));
        Assert.NotEqual(Make("a", "3"), Make("c", "4"));
    }

    [Fact]
    public void Should_read_a_shard_written_by_gnu_tar()
    {
        // key.png + key.cls files, archived by GNU tar in sorted member order (key.cls before key.png: a sample is the run
        // of members that share a key, whatever their order within it).
        var files = Directory.CreateDirectory(_dir.File("files")).FullName;
        var colours = new[] { SKColors.Red, SKColors.Lime, SKColors.Blue, SKColors.White, SKColors.Black };
        var names = new List<string>();
        for (int i = 0; i < colours.Length; i++)
        {
            string key = $"sample{i:D3}";
            WritePng(Path.Combine(files, $"{key}.png"), colours[i]);
            File.WriteAllText(Path.Combine(files, $"{key}.cls"), $"{i % 2}\n");
            names.AddRange([$"{key}.cls", $"{key}.png"]);
        }
        var shards = Directory.CreateDirectory(_dir.File("gnu")).FullName;
        Tool.Run("tar", ["-cf", Path.Combine(shards, "train-000000.tar"), "--format=gnu", "-C", files, .. names.Order(StringComparer.Ordinal)]);

        using var data = DatasetCatalog.Open($"shards:{shards}", "train", _dir.Path, folder: Rgb16);
        Assert.Equal(colours.Length, data.Count);
        Assert.Equal(["sample000", "sample001", "sample002", "sample003", "sample004"], Enumerable.Range(0, data.Count).Select(data.Key));
        Assert.Equal([0, 1, 0, 1, 0], Enumerable.Range(0, data.Count).Select(data.Label));
        Assert.Null(DatasetCatalog.TryOpen($"shards:{shards}", "test", _dir.Path, folder: Rgb16));
        var pixels = new float[data.Shape.Pixels];
        for (int i = 0; i < colours.Length; i++)
        {
            data.CopyImage(i, pixels);
            // Planes R, G, B of a flat colour: every pixel of plane c is that channel of the colour.
            var c = colours[i];
            Assert.Equal([c.Red / 255f, c.Green / 255f, c.Blue / 255f], new[] { pixels[0], pixels[256], pixels[512] });
            Assert.All(pixels.AsSpan(0, 256).ToArray(), v => Assert.Equal(c.Red / 255f, v));
        }
    }

    private static void AssertSameSamples(FolderDataset folder, IImageDataset shards)
    {
        Assert.Equal(folder.Count, shards.Count);
        var byKey = Enumerable.Range(0, folder.Count).ToDictionary(i => Path.GetFileNameWithoutExtension(folder.Key(i)));
        var expected = new float[folder.Shape.Pixels];
        var actual = new float[shards.Shape.Pixels];
        for (int i = 0; i < shards.Count; i++)
        {
            int f = byKey[shards.Key(i)];
            Assert.Equal($"class{shards.Label(i):D3}", folder.ClassNames[folder.Label(f)]);
            folder.CopyImage(f, expected);
            shards.CopyImage(i, actual);
            Assert.Equal(expected, actual);
        }
    }

    private static void WritePng(string path, SKColor colour)
    {
        using var bitmap = new SKBitmap(16, 16);
        bitmap.Erase(colour);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }
}

/// <summary>Runs a program and returns its output, failing the test (with that output) on a non-zero exit.</summary>
internal static class Tool
{
    public static string Run(string program, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        using var p = Process.Start(start) ?? throw new InvalidOperationException($"could not start {program}");
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} ran for more than 2 minutes");
        }
        var output = stdout + stderr.Result;
        Assert.True(p.ExitCode == 0, $"{program} {string.Join(' ', start.ArgumentList)} exited with {p.ExitCode}:\n{output}");
        return output;
    }
}

/// <summary>The Python 3 that has Pillow: Debian's /usr/bin/python3 first (a pyenv python3 on PATH may lack it).</summary>
internal static class Python
{
    private static readonly Lazy<string?> Found = new(() => new[] { "/usr/bin/python3", "python3" }.FirstOrDefault(HasPil));

    public static string? Executable => Found.Value;

    public static string Run(string script, params string[] arguments) =>
        Tool.Run(Executable ?? throw new InvalidOperationException("no python3 with Pillow: apt-get install python3-pil"), [script, .. arguments]);

    private static bool HasPil(string python)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo(python, ["-c", "import PIL"]) { RedirectStandardError = true, UseShellExecute = false });
            if (p is null) return false;
            p.StandardError.ReadToEnd();
            return p.WaitForExit(TimeSpan.FromSeconds(30)) && p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}

/// <summary>
/// A fact that needs python3 with Pillow (Debian's python3-pil). Without it the fact is skipped on a developer's machine,
/// but runs (and fails, saying what to install) where CI=true, so CI can never pass by skipping it.
/// </summary>
public sealed class NeedsPythonPilFactAttribute : FactAttribute
{
    public NeedsPythonPilFactAttribute()
    {
        if (Python.Executable is null && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            Skip = "python3 with Pillow is not installed (apt-get install python3-pil); with CI=true this fails instead";
    }
}
