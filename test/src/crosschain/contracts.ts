/** Test-only Solidity: an OFT with a public mint, and the endpoint + message lib from LayerZero's sources. */
export const SOURCES: Record<string, string> = {
  'XhedgeUsd.sol': `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.22;
import { OFT } from "@layerzerolabs/oft-evm/contracts/OFT.sol";
import { Ownable } from "@openzeppelin/contracts/access/Ownable.sol";
import { EndpointV2 } from "@layerzerolabs/lz-evm-protocol-v2/contracts/EndpointV2.sol";
import { SimpleMessageLib } from "@layerzerolabs/lz-evm-protocol-v2/contracts/messagelib/SimpleMessageLib.sol";

/// A 6-decimal stablecoin OFT for tests; the owner mints.
contract XhedgeUsd is OFT {
    constructor(address endpoint, address owner_) OFT("xhedge USD", "xUSD", endpoint, owner_) Ownable(owner_) {}
    function decimals() public pure override returns (uint8) { return 6; }
    function mint(address to, uint256 amount) external onlyOwner { _mint(to, amount); }
}

/// LayerZero's EndpointV2, made concrete under OpenZeppelin 5.
contract LocalEndpointV2 is EndpointV2 {
    constructor(uint32 eid_, address owner_) EndpointV2(eid_, owner_) Ownable(owner_) {}
}

/// LayerZero's SimpleMessageLib (no DVN checks: whoever calls validatePacket plays the DVN).
contract LocalMessageLib is SimpleMessageLib {
    constructor(address endpoint_, address treasury_) SimpleMessageLib(endpoint_, treasury_) Ownable(msg.sender) {}
}
`,
};
