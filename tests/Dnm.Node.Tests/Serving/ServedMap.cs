using System.Globalization;
using System.Net;
using Dnm.Core.Data;
using Dnm.Core.Explore;
using Dnm.Core.Training;
using Dnm.Node.Serving;
using SkiaSharp;
using static TorchSharp.torch;

namespace Dnm.Node.Tests.Serving;

/// <summary>One placement as `dnm map` wrote it in placements.csv.</summary>
public sealed record MappedSample(int Index, string Key, int Label, int Row, int Col, float Distance);

/// <summary>
/// A tiny trained map (the synthetic blobs, 4x4 unless the training options say otherwise) with `dnm map`'s placements
/// of its images: the reference the server's and the explorer's answers are checked against. Servers are started on
/// port 0 of the loopback with the limits a spec asks for, all over one placer.
/// </summary>
public sealed class ServedMap : IDisposable
{
    /// <summary>The square lattice the explorer specs read their cells from (HexMapExplorerSpec trains a hex one).</summary>
    public ServedMap() : this([.. TrainedRunFixture.TinyRun, "--lattice", "rect"]) { }

    /// <summary>A map trained on the synthetic blobs with <paramref name="training"/>'s `dnm train` options.</summary>
    /// <remarks>A factory, not a second public constructor: a class fixture may have only one.</remarks>
    public static ServedMap Trained(IReadOnlyList<string> training) => new(training);

    private ServedMap(IReadOnlyList<string> training)
    {
        Dataset = SyntheticIdx.Spec(Directory.Path);
        var run = Directory.File("run");
        var train = Cli.Run(["train", "--dataset", Dataset, "--out", run, "--seed", "5", .. training]);
        Assert.True(train.ExitCode == 0, train.Error);
        Checkpoint = Path.Combine(run, "checkpoints", "final.ckpt");
        var mapped = Cli.Run("map", "--checkpoint", Checkpoint, "--dataset", Dataset, "--out", Directory.File("map"));
        Assert.True(mapped.ExitCode == 0, mapped.Error);
        Mapped = File.ReadAllLines(Directory.File("map", "placements.csv")).Skip(1).Select(line =>
        {
            // index, key, label, class, row, col, distance
            var f = line.Split(',');
            return new MappedSample(int.Parse(f[0], CultureInfo.InvariantCulture), f[1], int.Parse(f[2], CultureInfo.InvariantCulture),
                int.Parse(f[4], CultureInfo.InvariantCulture), int.Parse(f[5], CultureInfo.InvariantCulture), float.Parse(f[6], CultureInfo.InvariantCulture));
        }).ToArray();
        // An IDX set has one split: `dnm map` placed it whole, in file order.
        Data = DatasetCatalog.Open(Dataset, "train", Directory.Path);
        Placer = MapPlacer.Create(Dnm.Core.Training.Checkpoint.Load(Checkpoint), Checkpoint, CPU, replicas: 2);
    }

    public ScratchDirectory Directory { get; } = new();
    public string Dataset { get; }
    public string Checkpoint { get; }
    public MappedSample[] Mapped { get; }
    public IImageDataset Data { get; }
    public MapPlacer Placer { get; }
    private readonly List<MapServer> servers = [];

    /// <summary>A placement server (no dataset) with <paramref name="options"/>' limits, on a free loopback port.</summary>
    public async Task<(MapServer Server, HttpClient Client)> ServeAsync(ServerOptions? options = null, MapExplorer? explorer = null, bool page = false)
    {
        var state = new ServerState();
        state.Publish(explorer ?? new MapExplorer(Placer, data: null, members: null));
        var server = await MapServer.StartAsync((options ?? new ServerOptions()) with { Addresses = [IPAddress.Loopback], Port = 0 }, state, page);
        servers.Add(server);
        return (server, new HttpClient { BaseAddress = new Uri(server.Urls[0]), Timeout = TimeSpan.FromSeconds(60) });
    }

    /// <summary>Image <paramref name="index"/> of the dataset as a grayscale PNG: decoding it gives back the dataset's bytes.</summary>
    public byte[] Png(int index) => GrayPng(Data, index);

    public static byte[] GrayPng(IImageDataset data, int index)
    {
        var shape = data.Shape;
        var pixels = new float[shape.Pixels];
        data.CopyImage(index, pixels);
        using var bitmap = new SKBitmap(new SKImageInfo(shape.Width, shape.Height, SKColorType.Gray8, SKAlphaType.Opaque));
        var bytes = pixels.Select(p => (byte)MathF.Round(p * 255f)).ToArray();
        System.Runtime.InteropServices.Marshal.Copy(bytes, 0, bitmap.GetPixels(), bytes.Length);
        using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return png.ToArray();
    }

    /// <summary>A colour PNG of <paramref name="width"/> x <paramref name="height"/> (a red square on blue).</summary>
    public static byte[] ColourPng(int width, int height)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        bitmap.Erase(SKColors.Blue);
        using (var canvas = new SKCanvas(bitmap))
        using (var paint = new SKPaint { Color = SKColors.Red })
            canvas.DrawRect(width / 4f, height / 4f, width / 2f, height / 2f, paint);
        using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return png.ToArray();
    }

    public void Dispose()
    {
        foreach (var server in servers) server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        Placer.Dispose();
        Data.Dispose();
        Directory.Dispose();
    }
}
