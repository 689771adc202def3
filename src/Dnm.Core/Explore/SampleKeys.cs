using Dnm.Core.Data;

namespace Dnm.Core.Explore;

/// <summary>What names a sample to a person browsing the map. The one place that decides it, so it can change in one line.</summary>
public static class SampleKeys
{
    /// <summary>
    /// The sample's key. Datasets do not name their samples yet, so this is its index in the split (the row of
    /// placements.csv); a dataset that knows file names or shard keys will answer here.
    /// </summary>
    public static string Of(IImageDataset data, int index) => index.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
