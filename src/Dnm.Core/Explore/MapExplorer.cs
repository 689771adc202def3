using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Evaluation;
using Dnm.Core.Visual;

namespace Dnm.Core.Explore;

/// <summary>The image shape, as the API and the page read it.</summary>
public sealed record ShapeInfo(int Channels, int Height, int Width);

/// <summary>
/// The lattice's metadata (<c>GET /v1/map</c>). <paramref name="Lattice"/> is <c>rect</c> or <c>hex</c> (odd rows shifted
/// half a cell right, <see cref="Som.MapGrid"/>); <paramref name="Toroidal"/> says whether the edges wrap.
/// </summary>
public sealed record MapInfo(
    int Rows, int Cols, int LatentDim, ShapeInfo ImageShape, string Encoder, string TrainedOn, long GlobalStep,
    IReadOnlyList<string> ClassNames, int[]? NodeLabels, string? Dataset, int PlacedSamples, string Lattice, bool Toroidal);

/// <summary>Per-node values for the page's overlays. QE is null on a node no sample landed on.</summary>
public sealed record MapLayers(float[] UMatrix, int[]? Hits, float?[]? Qe, int[]? Labels);

/// <summary>One sample on a node's page.</summary>
public sealed record MemberItem(int Index, string Key, int Label, float Distance);

/// <summary>A page of a node's samples, nearest first.</summary>
public sealed record MembersPage(int Node, int Row, int Col, int Total, int Page, int PageSize, IReadOnlyList<MemberItem> Items);

/// <summary>
/// A trained map and, for the explorer, one dataset placed on it once: per-node member lists (nearest first), the
/// hit map, the QE per node and the label map. Everything a page asks for is cut from these on demand.
/// </summary>
public sealed class MapExplorer
{
    private readonly IImageDataset? data;
    private readonly float[] umatrix;

    public MapExplorer(MapPlacer placer, IImageDataset? data, NodeMembers? members)
    {
        Placer = placer;
        this.data = data;
        Members = members;
        if (data is not null && members is null) throw new ArgumentException("a placed dataset needs its members", nameof(members));
        umatrix = MapRenderer.UMatrix(placer.Prototypes, placer.Grid, placer.Dim);
        PrototypeSprite = new Lazy<byte[]>(() => SpriteSheet.Png(placer.DecodePrototypes(), placer.Nodes, placer.Shape, placer.Cols));
        if (data is not null && members is not null && data.HasLabels)
        {
            var bmu = new int[members.Samples];
            var labels = new int[members.Samples];
            for (var node = 0; node < members.Nodes; node++)
                foreach (var i in members.Members(node))
                {
                    bmu[i] = node;
                    labels[i] = data.Label(i);
                }
            NodeLabels = MapMetrics.LabelMap(bmu, labels, placer.Nodes, data.ClassNames.Count);
        }
    }

    /// <summary>Places <paramref name="data"/> (all of it) on the map and keeps its member lists.</summary>
    public static MapExplorer Place(MapPlacer placer, IImageDataset data, CancellationToken cancel)
    {
        placer.Map.RequireShape(data);
        var placement = placer.PlaceDataset(data, cancel);
        return new MapExplorer(placer, data, NodeMembers.Build(placement.Bmu, placement.Distance, placer.Nodes));
    }

    public MapPlacer Placer { get; }
    public NodeMembers? Members { get; }
    public IImageDataset? Data => data;
    public int[]? NodeLabels { get; }

    /// <summary>
    /// The decoder's image of every prototype as one PNG laid out as the lattice (node j at row j / cols, column j % cols),
    /// unshifted: the page draws a hex map's odd rows half a cell to the right.
    /// </summary>
    public Lazy<byte[]> PrototypeSprite { get; }

    public MapInfo Info()
    {
        var config = Placer.Map.Config;
        var s = Placer.Shape;
        return new MapInfo(Placer.Rows, Placer.Cols, Placer.Dim, new ShapeInfo(s.Channels, s.Height, s.Width),
            config.Encoder.ToString().ToLowerInvariant(), config.Dataset, Placer.Map.Checkpoint.State.GlobalStep,
            data?.ClassNames ?? [], NodeLabels, data?.Name, Members?.Samples ?? 0, KebabEnum.Name(Placer.Grid.Lattice), Placer.Grid.Toroidal);
    }

    public MapLayers Layers() => new(umatrix, Members?.Hits(),
        Members?.QuantizationErrors().Select(q => float.IsNaN(q) ? (float?)null : q).ToArray(), NodeLabels);

    /// <summary>Component plane <paramref name="dimension"/>: that coordinate of every prototype.</summary>
    public float[] Component(int dimension)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(dimension);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(dimension, Placer.Dim);
        var plane = new float[Placer.Nodes];
        for (var n = 0; n < plane.Length; n++) plane[n] = Placer.Prototypes[n * Placer.Dim + dimension];
        return plane;
    }

    /// <summary>Page <paramref name="page"/> (from 0) of <paramref name="pageSize"/> samples of <paramref name="node"/>, nearest first.</summary>
    public MembersPage Page(int node, int page, int pageSize)
    {
        var members = RequireMembers();
        var (start, count) = PageRange(node, page, pageSize);
        var ids = members.Members(node).Slice(start, count);
        var dist = members.Distances(node).Slice(start, count);
        var items = new MemberItem[count];
        for (var i = 0; i < count; i++) items[i] = new MemberItem(ids[i], SampleKeys.Of(data!, ids[i]), data!.Label(ids[i]), dist[i]);
        return new MembersPage(node, node / Placer.Cols, node % Placer.Cols, members.Count(node), page, pageSize, items);
    }

    /// <summary>The same page's images as one sprite sheet, <paramref name="columns"/> wide.</summary>
    public byte[] PageSprite(int node, int page, int pageSize, int columns)
    {
        var members = RequireMembers();
        var (start, count) = PageRange(node, page, pageSize);
        return SpriteSheet.Png(data!, members.Members(node).Slice(start, count), columns);
    }

    private (int Start, int Count) PageRange(int node, int page, int pageSize)
    {
        var members = RequireMembers();
        ArgumentOutOfRangeException.ThrowIfNegative(node);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(node, Placer.Nodes);
        ArgumentOutOfRangeException.ThrowIfNegative(page);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(pageSize);
        var total = members.Count(node);
        var start = (int)Math.Min((long)page * pageSize, total);
        return (start, Math.Min(pageSize, total - start));
    }

    private NodeMembers RequireMembers() =>
        Members ?? throw new InvalidOperationException("no dataset is placed on this map (dnm explore places one)");
}
