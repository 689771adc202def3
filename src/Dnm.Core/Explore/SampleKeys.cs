using Dnm.Core.Data;

namespace Dnm.Core.Explore;

/// <summary>What names a sample to a person browsing the map. The one place that decides it.</summary>
public static class SampleKeys
{
    /// <summary>
    /// The sample's key (<see cref="IImageDataset.Key"/>): its path in a folder, its WebDataset key in shards, its
    /// zero-padded index in an IDX file; the same key as placements.csv's.
    /// </summary>
    public static string Of(IImageDataset data, int index) => data.Key(index);
}
